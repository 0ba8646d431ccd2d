"""The alert log's file format and its reader (the writer is :mod:`fusion.service.alertlog`).

File layout, version 2 (written by this build)::

    header   magic    8 bytes   b"BZALOG2\n"
             log_id   8 bytes   random per log
             crc      4 bytes   little-endian CRC-32 of magic and log_id
    record*  fusion.framing SYNCED_CRC_BEFORE_BODY: sync marker, length, CRC-32, body
             body     fusion.service.chain: kind, seq, log_id, prev hash, msgpack map

Version 1 (``b"BZALOG1\n"`` then ``length | crc | msgpack map`` records, no chain) is
still read, and appended to in its own format; it is reported as unchained, because a
record edited with a recomputed CRC reads as clean there.

Records are only ever appended, and nothing is ever cut or deleted. A crash can leave
a torn last record; a bad disk or an insider can change bytes anywhere. Reading steps
over a damaged region to the next record that verifies (the sync marker of version 2;
every offset in version 1) and checks the hash chain (:mod:`fusion.service.chain`).
:class:`AlertLog`, on opening, copies every damaged region byte for byte to
``<log>.quarantine`` (:mod:`fusion.service.quarantine`), records what it found in a
chained NOTE record, and appends after it. :func:`read_alert_entries` returns only
the events the chain lets us trust, with a :class:`LogReport` that says what was
damaged and which alerts it affects.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any

from fusion.framing import CRC_BEFORE_BODY, SYNC_MARKER, SYNCED_CRC_BEFORE_BODY, Gap
from fusion.messages import WireError, unpack_map
from fusion.service import chain
from fusion.service.chain import EVENT, ChainCheck, ChainRecord

__all__ = [
    "MAGIC",
    "MAGIC_V1",
    "AlertLogError",
    "LogFile",
    "LogReport",
    "open_alerts_from_events",
    "parse_log",
    "read_alert_entries",
    "read_alert_log",
    "rebuild_open_alerts",
]

log = logging.getLogger(__name__)

MAGIC = b"BZALOG2\n"
MAGIC_V1 = b"BZALOG1\n"
_LOG_ID = 8
HEADER_SIZE = len(MAGIC) + _LOG_ID + 4
# An alert event is a few hundred bytes; a length past MAX_RECORD_BYTES is corruption,
# not data, and must not make the reader allocate it.
RECORDS = replace(SYNCED_CRC_BEFORE_BODY, min_body=chain.FIXED_SIZE)
RECORDS_V1 = CRC_BEFORE_BODY
MAX_RECORD_BYTES = RECORDS.max_body - chain.FIXED_SIZE
# An alert id as the engine makes them, to name the alerts in damaged bytes.
_ALERT_ID = re.compile(rb"[\w.-]{1,64}:(?:incursion|predicted_incursion|exit|loitering|"
                       rb"lost_inside|probe):\d{1,12}:\d{1,6}")


class AlertLogError(OSError):
    """A file that is not an alert log, or an append that could not be made."""


@dataclass(frozen=True)
class LogReport:
    """What reading (or opening) a log found.

    Attributes
    ----------
    path : str
        The file.
    records : int
        Event records that verified and are trusted.
    valid_bytes : int
        Offset of the first problem (the file size when there is none).
    file_bytes : int
        Size of the file as found.
    error : str or None
        The first problem: a framing reason (``"truncated"``, ``"length"``, ``"crc"``,
        ``"sync"``), ``"payload"`` (a record that is no event map), or a chain finding
        (``"edited"``, ``"deleted"``, ``"reordered"``, ``"spliced"``,
        ``"bad_signature"``); ``None`` if clean.
    detail : str
        A sentence for a person, with the offset.
    truncated : bool
        Always False: the log is never cut (kept so older callers read it).
    version : int
        File format version (1: unchained).
    findings : tuple of dict
        Every problem (:func:`fusion.service.chain.summarize`).
    affected_alerts : tuple of str
        Alert ids whose record the damage may hide or falsify.
    untrusted : int
        Records that verified by CRC but are not believed (edited, spliced, forged).
    quarantined : tuple of dict
        Regions copied to the quarantine file (set by :class:`AlertLog`).
    head : dict
        ``{"seq", "hash"}`` of the newest record (version 2).
    """

    path: str
    records: int
    valid_bytes: int
    file_bytes: int
    error: str | None = None
    detail: str = ""
    truncated: bool = False
    version: int = 2
    findings: tuple[dict[str, Any], ...] = ()
    affected_alerts: tuple[str, ...] = ()
    untrusted: int = 0
    quarantined: tuple[dict[str, Any], ...] = ()
    head: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every byte of the file verified (and, version 2, chains)."""
        return self.error is None

    @property
    def chained(self) -> bool:
        return self.version >= 2

    def as_status(self) -> dict[str, Any]:
        """What ``status`` says about the log the service resumed from."""
        return {"chained": self.chained, "version": self.version,
                "trusted_event_records": self.records, "untrusted_records": self.untrusted,
                "damage": list(self.findings), "affected_alerts": list(self.affected_alerts),
                "quarantined": [{k: v for k, v in q.items() if k != "new"}
                                for q in self.quarantined],
                "open_set_from": "trusted records only"}


@dataclass
class LogFile:
    """Everything read from a log file: records, damaged regions, chain findings."""

    path: str
    version: int
    header: bytes
    log_id: bytes
    size: int
    records: list[ChainRecord]
    gaps: list[Gap]
    check: ChainCheck


def _header(data: Any, path: str) -> tuple[int, bytes, bytes]:
    """(version, header bytes, log id) of a whole log in ``data``."""
    head = bytes(data[: len(MAGIC)])
    if head == MAGIC_V1:
        return 1, MAGIC_V1, b""
    if head != MAGIC:
        raise AlertLogError(f"{path} is not a bufferzone alert log (bad magic {head[:8]!r})")
    if len(data) < HEADER_SIZE:
        raise AlertLogError(f"{path}: header cut short ({len(data)} of {HEADER_SIZE} bytes)")
    raw = bytes(data[: HEADER_SIZE - 4])
    (crc,) = struct.unpack_from("<I", data, HEADER_SIZE - 4)
    if zlib.crc32(raw) != crc:
        raise AlertLogError(f"{path}: header CRC mismatch; corrupt header")
    return 2, raw, raw[len(MAGIC) :]


def parse_log(data: Any, path: str, public: bytes | None = None,
              witnesses: Iterable[tuple[int, bytes]] = ()) -> LogFile:
    """Read every record of a whole log held in ``data`` and check its chain.

    Raises
    ------
    AlertLogError
        If ``data`` is not an alert log (wrong magic, damaged version-2 header).
    """
    version, header, log_id = _header(data, path)
    layout = RECORDS if version == 2 else RECORDS_V1
    start = HEADER_SIZE if version == 2 else len(MAGIC)
    scan = layout.scan(data, start, resync=True)
    records: list[ChainRecord] = []
    for i, span in enumerate(scan):
        body = bytes(data[span.start : span.end])
        if version == 1:
            records.append(ChainRecord(span.offset, span.end, EVENT, i, b"", b"", b"", body))
            continue
        records.append(chain.unpack_body(body, span.offset, span.end))
    gaps = list(scan.finished().gaps)
    if version == 2:
        check = chain.check_chain(data, header, log_id, records, gaps, public, witnesses)
    else:
        check = ChainCheck()
        chain_gaps = ChainCheck()
        chain._check_gaps(data, gaps, set(), len(data), chain_gaps)
        check.findings = chain_gaps.findings
    return LogFile(path, version, header, log_id, len(data), records, gaps, check)


def _decode(record: ChainRecord) -> dict[str, Any] | None:
    try:
        event = unpack_map(record.payload)
    except WireError:
        return None
    event.pop("v", None)
    return event


def _trusted_entries(lf: LogFile) -> tuple[list[tuple[int, int, dict[str, Any]]], list[int]]:
    """(seq, offset, event) of every trusted event record in seq order; the undecodable."""
    entries, bad, seen = [], [], set()
    for r in sorted(lf.records, key=lambda r: r.seq):
        if r.kind != EVENT or r.offset in lf.check.untrusted or r.log_id != lf.log_id:
            continue
        if r.seq in seen:
            continue  # a replayed copy of a record already taken
        event = _decode(r)
        if event is None or "alert_id" not in event:
            bad.append(r.offset)
            continue
        seen.add(r.seq)
        entries.append((r.seq, r.offset, event))
    return entries, bad


def _explained(lf: LogFile, data: Any, lo: int, hi: int, missing: int) -> bool:
    """Whether the ``missing`` records between offsets ``lo`` and ``hi`` can each be read
    well enough to name their alert (an edited record, or one record's damaged bytes)."""
    named = sum(1 for r in lf.records if lo < r.offset < hi and r.offset in lf.check.untrusted
                and _ALERT_ID.search(r.payload))
    for g in lf.gaps:
        if lo < g.offset < hi:
            chunks = bytes(data[g.offset : g.end]).split(SYNC_MARKER)
            named += sum(1 for c in chunks if _ALERT_ID.search(c))
    return 0 < missing == named


def _holes(lf: LogFile, data: Any, entries: Sequence[tuple[int, int, dict[str, Any]]]
           ) -> list[bool]:
    """For each entry, and once more for the end: may a record we cannot name be missing
    before it? (A missing record whose alert its damaged bytes still name is no hole.)"""
    trusted = {r.seq for r in lf.records if r.offset not in lf.check.untrusted
               and r.log_id == lf.log_id}
    top = max(trusted, default=-1)
    if lf.version == 2:
        missing = sorted(set(range(top + 1)) - trusted)
        bounds = [(e[0], e[1]) for e in entries] + [(top + 1, lf.size)]
        lo, lo_off, out, k = -1, 0, [], 0
        for b, b_off in bounds:
            while k < len(missing) and missing[k] <= lo:
                k += 1
            n = sum(1 for m in missing[k:] if m < b)
            out.append(n > 0 and not _explained(lf, data, lo_off, b_off, n))
            lo, lo_off = b, b_off
        if lf.gaps and lf.gaps[-1].end == lf.size:
            out[-1] = True
        return out
    # Version 1 has no sequence numbers: a damaged region between two records is a hole.
    ends = [0] + [e[1] for e in entries] + [lf.size + 1]
    return [any(a <= g.offset < b for g in lf.gaps) for a, b in zip(ends, ends[1:], strict=False)]


def _affected(lf: LogFile, data: Any, entries: Sequence[tuple[int, int, dict[str, Any]]]
              ) -> set[str]:
    """Alerts whose story the damage may hide: named in damaged or untrusted bytes, open
    across a hole in the sequence, or first seen after one without their ``open``."""
    ids: set[str] = set()
    for g in lf.gaps:
        ids.update(m.decode() for m in _ALERT_ID.findall(bytes(data[g.offset : g.end])))
    for r in lf.records:
        if r.offset in lf.check.untrusted:
            ids.update(m.decode() for m in _ALERT_ID.findall(r.payload))
    holes = _holes(lf, data, entries)
    open_now: set[str] = set()
    known: set[str] = set()
    hole_seen = False
    for (_, _, ev), hole in zip(entries, holes, strict=False):
        if hole:
            ids |= open_now
            hole_seen = True
        aid = ev["alert_id"]
        if aid not in known and ev["event"] != "open" and hole_seen:
            ids.add(aid)
        known.add(aid)
        if ev["event"] == "close":
            open_now.discard(aid)
        else:
            open_now.add(aid)
    if holes and holes[-1]:
        ids |= open_now
    return ids


def _report(lf: LogFile, data: Any) -> tuple[list[tuple[int, dict[str, Any]]], LogReport]:
    full, bad = _trusted_entries(lf)
    entries = [(seq, ev) for seq, _, ev in full]
    findings = list(lf.check.findings)
    for off in bad:
        findings.append(chain.Finding("payload", off, None,
                                      f"record at offset {off} is not an event map"))
    findings.sort(key=lambda f: f.offset)
    fatal = [f for f in findings if f.fatal and f.kind != "unsigned"]
    gap_at = {g.offset: g.reason for g in lf.gaps}
    error = detail = None
    if fatal:
        error = gap_at.get(fatal[0].offset, fatal[0].kind)
        detail = fatal[0].detail
        if len(fatal) > 1:
            detail += f" (and {len(fatal) - 1} more problem(s))"
    top = max((r for r in lf.records if r.log_id == lf.log_id), key=lambda r: r.seq,
              default=None)
    head = {} if top is None or lf.version == 1 else {"seq": top.seq, "hash": top.hash.hex()}
    report = LogReport(
        lf.path, len(entries), fatal[0].offset if fatal else lf.size, lf.size, error,
        detail or f"{len(entries)} event records, {lf.size} bytes, clean", False, lf.version,
        tuple(chain.summarize(findings)), tuple(sorted(_affected(lf, data, full))),
        len(lf.check.untrusted), (), head,
    )
    return entries, report


def _read(path: str, public: bytes | None = None, witnesses: Iterable = ()
          ) -> tuple[LogFile | None, list[tuple[int, dict[str, Any]]], LogReport]:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < len(MAGIC) and (MAGIC.startswith(Path(path).read_bytes())
                                  or MAGIC_V1.startswith(Path(path).read_bytes())):
            # A crash while creating the file: no records were ever written.
            return None, [], LogReport(path, 0, 0, size, "truncated" if size else None,
                                       f"file ends inside the header at offset {size}")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            lf = parse_log(data, path, public, witnesses)
            entries, report = _report(lf, data)
    return lf, entries, report


def read_alert_entries(path: str | PathLike[str]
                       ) -> tuple[list[tuple[int, dict[str, Any]]], LogReport]:
    """The trusted events of a log with their sequence numbers, and its report.

    The sequence number is what :attr:`AlertLog.records` counted when the event was
    written, so a checkpoint's ``log_records`` splits the list exactly even when records
    before it were lost.

    Raises
    ------
    AlertLogError
        If the file is not an alert log (wrong magic); OSError if it cannot be read.
    """
    _, entries, report = _read(os.fspath(path))
    return entries, report


def read_alert_log(path: str | PathLike[str]) -> tuple[list[dict[str, Any]], LogReport]:
    """Read and verify a whole alert log: its trusted events in order, and its report.

    Raises
    ------
    AlertLogError
        If the file is not an alert log (wrong magic); OSError if it cannot be read.
    """
    entries, report = read_alert_entries(path)
    return [ev for _, ev in entries], report


def open_alerts_from_events(events: Iterable[Mapping[str, Any]],
                            adopt: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The latest event of each alert that has no ``close`` event, in opening order.

    Parameters
    ----------
    events : iterable of dict
        Alert events in log order.
    adopt : iterable of str
        Alerts whose ``open`` may have been lost in damage: a trusted ``update`` of one
        of them makes it open (the update carries every field of the alert).
    """
    adopt = set(adopt)
    latest: dict[str, dict[str, Any]] = {}
    for ev in events:
        alert_id = ev["alert_id"]
        if ev["event"] == "close":
            latest.pop(alert_id, None)
        elif ev["event"] == "open" or alert_id in latest or alert_id in adopt:
            # An update of an alert opened before the log started is ignored: the log
            # does not know it as open.
            latest[alert_id] = dict(ev)
    return list(latest.values())


def rebuild_open_alerts(path: str | PathLike[str]) -> tuple[list[dict[str, Any]], LogReport]:
    """Open alerts according to the trusted records of a log on disk, and its report."""
    events, report = read_alert_log(path)
    return open_alerts_from_events(events, report.affected_alerts), report


