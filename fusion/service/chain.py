"""The alert log's hash chain, its Ed25519 head signatures, and the check of both.

A version-2 alert log record body (inside :mod:`fusion.framing`'s synced layout) is::

    kind     uint8     EVENT, HEAD (a signed chain head), NOTE (damage found on open)
                       or CONFIG (zones and rules in force)
    seq      uint64    0, 1, 2, ... over every record of the log
    log_id   8 bytes   random per log, also in the file header
    prev     32 bytes  SHA-256 of the previous record's body (the genesis hash for
                       seq 0: SHA-256 of the file header)
    payload  msgpack map

A record's hash is the SHA-256 of its whole body, so each record commits to every
record before it: an edit changes a hash its successor no longer matches, a deletion
leaves a hole in ``seq`` and a broken link, a reordering runs ``seq`` backwards, and a
record copied in from another log carries that log's ``log_id``. The last records are
protected by HEAD records: an Ed25519 signature over ``(log_id, seq, hash)`` of the
record before it, made by the service at intervals and at shutdown, and also sent on
the ``status`` topic so every subscriber holds a witness. Whoever rewrites the log
must re-sign the heads (they lack the key) and contradict every witness.

:func:`check_chain` turns the records and damaged regions of a file into
:class:`Finding` objects, each naming the record and the kind of damage.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "CONFIG",
    "EVENT",
    "HEAD",
    "NOTE",
    "ChainRecord",
    "Finding",
    "Signer",
    "check_chain",
    "create_signing_key",
    "genesis",
    "head_message",
    "load_public_key",
    "load_signer",
    "pack_body",
    "unpack_body",
    "verify_head",
]

EVENT, HEAD, NOTE, CONFIG = 0, 1, 2, 3
KIND_NAMES = {EVENT: "event", HEAD: "head", NOTE: "note", CONFIG: "config"}
_FIXED = struct.Struct("<BQ8s32s")
FIXED_SIZE = _FIXED.size
_HEAD_DOMAIN = b"bufferzone alert-log head v2\0"


def genesis(header: bytes) -> bytes:
    """The ``prev`` of record 0: SHA-256 of the file header (magic and log id)."""
    return hashlib.sha256(header).digest()


def pack_body(kind: int, seq: int, log_id: bytes, prev: bytes, payload: bytes) -> bytes:
    """One record body; its hash is ``hashlib.sha256(body).digest()``."""
    return _FIXED.pack(kind, seq, log_id, prev) + payload


@dataclass(frozen=True)
class ChainRecord:
    """One verified-by-CRC record of a version-2 log, with where it lies.

    Attributes
    ----------
    offset, end : int
        The record's bytes in the file (marker to end of body).
    kind, seq : int
    log_id, prev, hash : bytes
    payload : bytes
        The msgpack map after the fixed part.
    """

    offset: int
    end: int
    kind: int
    seq: int
    log_id: bytes
    prev: bytes
    hash: bytes
    payload: bytes


def unpack_body(body: bytes, offset: int = 0, end: int = 0) -> ChainRecord:
    """Parse a record body; ValueError if it is shorter than the fixed part."""
    if len(body) < FIXED_SIZE:
        raise ValueError(f"record at offset {offset}: body of {len(body)} bytes has no chain")
    kind, seq, log_id, prev = _FIXED.unpack_from(body, 0)
    return ChainRecord(offset, end, kind, seq, log_id, prev, hashlib.sha256(body).digest(),
                       bytes(body[FIXED_SIZE:]))


# -- keys and signatures -----------------------------------------------------------------


def head_message(log_id: bytes, seq: int, head: bytes) -> bytes:
    """The bytes a head signature covers (domain-separated from any other use of the key)."""
    return _HEAD_DOMAIN + log_id + struct.pack("<Q", seq) + head


class Signer:
    """An Ed25519 signing key (``bufferzone keys --signing``), kept apart from CURVE keys.

    Parameters
    ----------
    key : Ed25519PrivateKey
    """

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self.public = key.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """64-byte signature of ``message``."""
        return self._key.sign(message)


def create_signing_key(directory: str | Path, name: str,
                       overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.sign_secret`` (owner-only) and ``NAME.sign_public`` (hex, one line).

    Raises
    ------
    FileExistsError
        If either file exists and ``overwrite`` is false.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    secret, public = directory / f"{name}.sign_secret", directory / f"{name}.sign_public"
    if not overwrite:
        for path in (secret, public):
            if path.exists():
                raise FileExistsError(f"{path} exists")
    key = Ed25519PrivateKey.generate()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(secret, flags, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as f:
        f.write(key.private_bytes_raw().hex() + "\n")
    public.write_text(key.public_key().public_bytes_raw().hex() + "\n")
    return public, secret


def _hex_file(path: str | Path, what: str) -> bytes:
    try:
        raw = bytes.fromhex(Path(path).read_text().strip())
    except ValueError:
        raise ValueError(f"{path} is not a hex-encoded Ed25519 {what}") from None
    if len(raw) != 32:
        raise ValueError(f"{path}: an Ed25519 {what} is 32 bytes, found {len(raw)}")
    return raw


def load_signer(path: str | Path) -> Signer:
    """The signing key of a ``.sign_secret`` file."""
    return Signer(Ed25519PrivateKey.from_private_bytes(_hex_file(path, "secret key")))


def load_public_key(path_or_hex: str | Path) -> bytes:
    """A public key from a ``.sign_public`` file, or given as 64 hex digits."""
    text = str(path_or_hex)
    if len(text) == 64 and not Path(text).exists():
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    return _hex_file(path_or_hex, "public key")


def verify_head(public: bytes, log_id: bytes, seq: int, head: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is ``public``'s signature of the head ``(log_id, seq, head)``."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, head_message(log_id, seq, head))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- checking a chain --------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing wrong with (or worth knowing about) a log.

    Attributes
    ----------
    kind : str
        ``damaged`` (bytes that fail their CRC or framing), ``edited`` (a record that
        differs from what its successor or a signed head committed to), ``deleted``
        (records missing from the sequence), ``reordered``, ``truncated`` (the file ends
        before a record, a signature or a witness says it did), ``spliced`` (a record
        of another log), ``appended`` (an event after the head signed at shutdown),
        ``bad_signature``, ``unsigned`` (records no signature covers yet),
        ``unvouched`` (records the service found unsigned when it restarted, and
        signed over without being able to vouch for them) or ``acknowledged``
        (damage the writer found, quarantined and recorded).
    offset : int
        Byte offset of the first bad record or region.
    seq : int or None
        The record's sequence number, where known.
    detail : str
        A sentence for a person.
    fatal : bool
        Whether it makes the log not intact (``unsigned``, ``unvouched`` and
        ``acknowledged`` do not; ``unsigned`` does when a key is given).
    """

    kind: str
    offset: int
    seq: int | None
    detail: str
    fatal: bool = True


@dataclass
class ChainCheck:
    """What :func:`check_chain` found.

    Attributes
    ----------
    findings : list of Finding
        In file order.
    untrusted : set of int
        File offsets of records that must not be believed (edited, spliced, forged).
    signed_seq : int
        Highest sequence number covered by a head signature that verified (-1: none).
    heads : list of dict
        The HEAD records: seq, head, key, sig, valid.
    """

    findings: list[Finding] = field(default_factory=list)
    untrusted: set[int] = field(default_factory=set)
    signed_seq: int = -1
    heads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not any(f.fatal for f in self.findings)


def _unpack(payload: bytes) -> dict[str, Any]:
    import msgpack

    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:  # any damage in a map we only read fields from
        return {}
    return obj if isinstance(obj, dict) else {}


def _acknowledged(records: Sequence[ChainRecord]) -> set[tuple[int, int, str]]:
    """(offset, length, sha256 hex) of every region a NOTE record says was quarantined."""
    acked = set()
    for r in records:
        if r.kind == NOTE:
            for region in _unpack(r.payload).get("regions", []):
                acked.add((int(region["offset"]), int(region["length"]), str(region["sha256"])))
    return acked


def _check_gaps(buf: Any, gaps: Iterable[Any], acked: set, size: int, out: ChainCheck) -> None:
    for g in gaps:
        digest = hashlib.sha256(bytes(buf[g.offset : g.end])).hexdigest()
        if (g.offset, g.end - g.offset, digest) in acked:
            out.findings.append(Finding("acknowledged", g.offset, None,
                                        f"{g.end - g.offset} damaged bytes at offset "
                                        f"{g.offset}, quarantined by the writer ({g.detail})",
                                        fatal=False))
        elif g.end == size and g.reason in ("truncated", "sync"):
            out.findings.append(Finding("truncated", g.offset, None,
                                        f"the file ends inside a record: {g.detail}"))
        else:
            out.findings.append(Finding("damaged", g.offset, None,
                                        f"{g.end - g.offset} bytes at offset {g.offset} "
                                        f"are not a valid record: {g.detail}"))


def _check_order(own: Sequence[ChainRecord], gaps: Sequence[Any], out: ChainCheck) -> None:
    """Reordered records, and holes in ``seq`` (deleted, or lost inside damage)."""
    present = {r.seq for r in own}
    top = -1
    for r in own:
        if r.seq <= top:
            out.findings.append(Finding("reordered", r.offset, r.seq,
                                        f"record seq {r.seq} at offset {r.offset} comes after "
                                        f"seq {top}"))
        top = max(top, r.seq)
    prev_r: ChainRecord | None = None
    for r in sorted(own, key=lambda r: r.seq):
        lo = -1 if prev_r is None else prev_r.seq
        if r.seq > lo + 1:
            missing = [s for s in range(lo + 1, r.seq) if s not in present]
            a = 0 if prev_r is None else prev_r.end
            damaged = any(a <= g.offset < r.offset for g in gaps)
            kind = "damaged" if damaged else "deleted"
            what = "unreadable in damaged bytes" if damaged else "missing"
            out.findings.append(Finding(kind, r.offset, missing[0],
                                        f"record(s) seq {missing[0]}..{missing[-1]} {what} "
                                        f"before offset {r.offset}"))
        prev_r = r


def _check_links(own: Sequence[ChainRecord], first_prev: bytes, out: ChainCheck) -> None:
    """A record whose successor commits to another hash was edited."""
    by_seq: dict[int, list[ChainRecord]] = {}
    for r in own:
        by_seq.setdefault(r.seq, []).append(r)
    for r in own:
        if r.seq == 0:
            if r.prev != first_prev:
                out.findings.append(Finding("edited", r.offset, 0,
                                            "record seq 0 does not follow this file's header"))
                out.untrusted.add(r.offset)
            continue
        before = by_seq.get(r.seq - 1, [])
        if before and all(q.hash != r.prev for q in before):
            for q in before:
                out.findings.append(Finding("edited", q.offset, q.seq,
                                            f"record seq {q.seq} at offset {q.offset} was "
                                            f"changed: record seq {r.seq} committed to "
                                            "another hash"))
                out.untrusted.add(q.offset)


def _check_heads(own: Sequence[ChainRecord], public: bytes | None, out: ChainCheck) -> None:
    by_seq = {r.seq: r for r in own}
    shift = 0  # records missing before the heads seen so far (a renumbered chain)
    for r in sorted((r for r in own if r.kind == HEAD), key=lambda r: r.seq):
        p = _unpack(r.payload)
        seq, head = int(p.get("seq", -1)), bytes(p.get("head", b""))
        key, sig = bytes(p.get("key", b"")), bytes(p.get("sig", b""))
        valid = verify_head(key, r.log_id, seq, head, sig) and (public is None or key == public)
        out.heads.append({"seq": seq, "head": head.hex(), "key": key.hex(), "valid": valid,
                          "offset": r.offset, "record_seq": r.seq,
                          "reason": str(p.get("reason", ""))})
        if not valid:
            why = "another key" if public is not None and key != public else "an invalid key"
            out.findings.append(Finding("bad_signature", r.offset, r.seq,
                                        f"head signature at offset {r.offset} (seq {seq}) "
                                        f"is signed by {why}"))
            out.untrusted.add(r.offset)
            continue
        target = by_seq.get(seq)
        if seq >= r.seq:
            # A head always signs the record just before it; one that names a later
            # record sits where removed records used to be, in a renumbered chain.
            if seq - r.seq + 1 != shift:
                shift = seq - r.seq + 1
                # They were somewhere after the newest record a head still vouches for.
                first = by_seq.get(out.signed_seq + 1, r)
                after = f" after seq {out.signed_seq}" if out.signed_seq >= 0 else ""
                out.findings.append(Finding("deleted", first.offset, first.seq,
                                            f"{shift} record(s) were removed{after} and the "
                                            f"chain renumbered: the head signed at offset "
                                            f"{r.offset} names seq {seq}, but only {r.seq} "
                                            "records precede it"))
        elif target is None:
            out.findings.append(Finding("truncated", r.offset, seq,
                                        f"a signed head names seq {seq}, which the log lacks"))
        elif target.hash != head:
            out.findings.append(Finding("edited", target.offset, seq,
                                        f"record seq {seq} differs from the head signed at "
                                        f"offset {r.offset}"))
            out.untrusted.add(target.offset)
        elif target.offset not in out.untrusted:
            # The HEAD record right after what it signs is covered by its own signature.
            out.signed_seq = max(out.signed_seq, r.seq if r.seq == seq + 1 else seq)


def _check_after_shutdown(own: Sequence[ChainRecord], out: ChainCheck) -> None:
    """Events after a head signed at shutdown and before the next run's CONFIG record:
    the service writes nothing between the two, so someone else appended them."""
    stops = sorted(h["record_seq"] for h in out.heads if h["valid"] and h["reason"] == "shutdown")
    starts = sorted(r.seq for r in own if r.kind == CONFIG)
    if not stops:
        return
    for r in own:
        k = bisect.bisect_left(stops, r.seq)  # one log has as many stops as restarts
        if r.kind != EVENT or k == 0:
            continue
        stop = stops[k - 1]
        c = bisect.bisect_right(starts, stop)
        if c == len(starts) or starts[c] > r.seq:
            out.findings.append(Finding("appended", r.offset, r.seq,
                                        f"record seq {r.seq} at offset {r.offset} follows "
                                        f"the head signed at shutdown (seq {stop}); "
                                        "the service wrote no event after it"))
            out.untrusted.add(r.offset)


def _unvouched(own: Sequence[ChainRecord], out: ChainCheck) -> None:
    """What the service said, on restarting, about records no signature covered then."""
    for r in own:
        if r.kind == NOTE and r.offset not in out.untrusted:
            note = _unpack(r.payload)
            if note.get("type") == "unvouched":
                out.findings.append(Finding("unvouched", r.offset, r.seq,
                                            str(note.get("detail", "")), fatal=False))


def check_chain(
    buf: Any,
    header: bytes,
    log_id: bytes,
    records: Sequence[ChainRecord],
    gaps: Sequence[Any],
    public: bytes | None = None,
    witnesses: Iterable[tuple[int, bytes]] = (),
) -> ChainCheck:
    """Check a version-2 log's records, damaged regions, signatures and witnesses.

    Parameters
    ----------
    buf : bytes-like
        The whole file (damaged regions are hashed to match the writer's notes).
    header : bytes
        The file header (magic and log id) the genesis hash is taken of.
    log_id : bytes
    records : sequence of ChainRecord
        Every record whose CRC holds, in file order.
    gaps : sequence of fusion.framing.Gap
    public : bytes, optional
        The service's public signing key; every head must be signed by it.
    witnesses : iterable of (seq, head hash)
        Heads seen elsewhere (the ``status`` topic); the log must still hold them.
    """
    out = ChainCheck()
    own = [r for r in records if r.log_id == log_id]
    for r in records:
        if r.log_id != log_id:
            out.findings.append(Finding("spliced", r.offset, r.seq,
                                        f"record at offset {r.offset} belongs to log "
                                        f"{r.log_id.hex()}, not {log_id.hex()}"))
            out.untrusted.add(r.offset)
    _check_gaps(buf, gaps, _acknowledged(own), len(buf), out)
    _check_order(own, gaps, out)
    _check_links(own, genesis(header), out)
    _check_heads(own, public, out)
    _check_after_shutdown(own, out)
    _unvouched(own, out)
    by_seq = {r.seq: r for r in own}
    for seq, head in witnesses:
        target = by_seq.get(seq)
        if target is None:
            out.findings.append(Finding("truncated", len(buf), seq,
                                        f"a witness saw seq {seq}; the log ends before it"))
        elif target.hash != head:
            out.findings.append(Finding("edited", target.offset, seq,
                                        f"record seq {seq} differs from the head a witness saw"))
            out.untrusted.add(target.offset)
    top = max((r.seq for r in own), default=-1)
    if top > out.signed_seq:
        first = min((r for r in own if r.seq > out.signed_seq), key=lambda r: r.seq)
        out.findings.append(Finding("unsigned", first.offset, first.seq,
                                    f"records seq {out.signed_seq + 1}..{top} are covered by "
                                    "no valid head signature", fatal=public is not None))
    out.findings.sort(key=lambda f: (f.offset, f.kind))
    return out


def summarize(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Findings as plain maps (for ``status`` and JSON output)."""
    return [{"kind": f.kind, "offset": f.offset, "seq": f.seq, "detail": f.detail,
             "fatal": f.fatal} for f in findings]


def payload_map(record: ChainRecord) -> Mapping[str, Any]:
    """A record's payload as a map ({} when it is not one)."""
    return _unpack(record.payload)
