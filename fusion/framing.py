"""Length-prefixed, CRC-checked records for append-only files.

The alert log (:mod:`fusion.service.alertlog`) and the recording
(:mod:`replay.recording`) are both a header of their own followed by records that are
only ever appended. This module owns the records: how one is laid out, how it is
written, and how a file of them is read back and checked, including where a torn or
damaged tail begins. It never writes to, cuts or deletes anything in a file it reads;
what to do about a bad tail is the owner's decision.

Three layouts are on disk today, each a :class:`RecordLayout` (integers little-endian)::

    SYNCED_CRC_BEFORE_BODY  (the alert log, version 2)
      sync    8 bytes SYNC_MARKER, so a reader can find the next record after damage
      length  uint32  body size B
      crc     uint32  CRC-32 of the body
      body    B bytes

    CRC_BEFORE_BODY  (the alert log, version 1)
      length  uint32  body size B
      crc     uint32  CRC-32 of the body
      body    B bytes

    CRC_AFTER_BODY   (the recording)
      length  uint32  body size B
      body    B bytes
      crc     uint32  CRC-32 of length and body (the 4 + B bytes before it)

Reading stops at the first record that does not verify and reports why
(:class:`ScanEnd`): ``"truncated"`` when the file ends inside a record, ``"length"``
when a record declares a size no writer produces (unless everything from there on is
zero bytes, which is how some file systems leave a crash: that is a truncation too),
``"crc"`` when the checksum does not match.

With ``resync=True`` a scan does not stop at damage: it records a :class:`Gap` (the
damaged bytes, never altered) and resumes at the next position where a whole record
verifies. A layout with a sync marker only tries the positions where the marker
occurs; one without tries every byte offset (slow, but only over damaged bytes, and a
CRC-32 that holds by chance at a wrong offset is one in four billion). The hash chain
of the alert log lives in the bodies (:mod:`fusion.service.chain`), not here.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = [
    "CRC_AFTER_BODY",
    "CRC_BEFORE_BODY",
    "SYNCED_CRC_BEFORE_BODY",
    "SYNC_MARKER",
    "Gap",
    "RecordLayout",
    "RecordScan",
    "ScanEnd",
    "Span",
]

# What a record is read from or written as: a file's bytes or a read-only map of it.
Buffer = bytes | bytearray | memoryview | mmap.mmap
Reason = Literal["truncated", "length", "crc", "sync"]

_U32 = struct.Struct("<I")
_U32_PAIR = struct.Struct("<II")


class Span(NamedTuple):
    """Where one verified record lies in the buffer that was scanned.

    Positions, not a view: a view would pin a memory map open after its reader
    closes it.

    Attributes
    ----------
    offset : int
        Byte offset of the record (its length prefix).
    start, end : int
        The body is ``buf[start:end]``.
    """

    offset: int
    start: int
    end: int


class Gap(NamedTuple):
    """Damaged bytes a resynchronising scan stepped over: ``buf[offset:end]``.

    Attributes
    ----------
    offset, end : int
        The region; ``end`` is the offset of the next verified record (or the size).
    reason : {"truncated", "length", "crc"}
        What was wrong at ``offset``; ``"truncated"`` only when the region runs to the
        end of the buffer.
    detail : str
        A sentence for a person, naming the offset.
    """

    offset: int
    end: int
    reason: Reason
    detail: str


@dataclass(frozen=True)
class ScanEnd:
    """Where a scan stopped and why.

    Attributes
    ----------
    offset : int
        Byte offset just after the last verified record: the offset of the first bad
        record when ``reason`` is set, the end of the buffer otherwise.
    records : int
        Records that verified.
    size : int
        Bytes that were scanned to (the file size).
    reason : {"truncated", "length", "crc", "sync"} or None
        Why the scan stopped before ``size`` (``"sync"``: no record marker where a
        record should start); ``None`` when every byte verified, or, with ``resync``,
        when the last damaged region is followed by a record.
    detail : str
        A sentence for a person, naming the offset.
    gaps : tuple of Gap
        Every damaged region a resynchronising scan stepped over.
    """

    offset: int
    records: int
    size: int
    reason: Reason | None = None
    detail: str = ""
    gaps: tuple[Gap, ...] = ()

    @property
    def clean(self) -> bool:
        """True when every byte up to ``size`` belongs to a verified record."""
        return self.reason is None and not self.gaps


@dataclass(frozen=True)
class RecordLayout:
    """How records are framed: length prefix, CRC-32 placement and size limits.

    Parameters
    ----------
    crc_after_body : bool
        ``False``: ``length | crc(body) | body``. ``True``: ``length | body |
        crc(length + body)``.
    max_body : int
        Largest body a writer may produce; a larger declared length is damage, and the
        reader never allocates it.
    min_body : int
        Smallest body a writer produces (a fixed part every body has).
    sync : bytes
        A marker written before every record ("" for none): where a reader resumes
        after damage.
    """

    crc_after_body: bool
    max_body: int
    min_body: int = 0
    sync: bytes = b""

    @property
    def overhead(self) -> int:
        """Bytes each record adds around its body."""
        return 8 + len(self.sync)

    @property
    def header_size(self) -> int:
        """Bytes before the body: marker, length, and the CRC when it comes first."""
        return len(self.sync) + (4 if self.crc_after_body else 8)

    def pieces(self, *body: Buffer) -> list[Buffer]:
        """The buffers that make up one record whose body is the concatenated ``body``.

        The body parts are not copied, so a large payload can go straight to the file
        (``f.writelines(layout.pieces(head, payload))``).

        Raises
        ------
        ValueError
            If the body is outside ``[min_body, max_body]``.
        """
        length = sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in body)
        if not self.min_body <= length <= self.max_body:
            raise ValueError(
                f"record body of {length} bytes is outside [{self.min_body}, {self.max_body}]"
            )
        if self.crc_after_body:
            prefix = _U32.pack(length)
            crc = zlib.crc32(prefix)
            for part in body:
                crc = zlib.crc32(part, crc)
            return [self.sync + prefix, *body, _U32.pack(crc)]
        crc = 0
        for part in body:
            crc = zlib.crc32(part, crc)
        return [self.sync + _U32_PAIR.pack(length, crc), *body]

    def encode(self, *body: Buffer) -> bytes:
        """One whole record as bytes (see :meth:`pieces`)."""
        return b"".join(self.pieces(*body))

    def scan(
        self, buf: Buffer, start: int, size: int | None = None, resync: bool = False
    ) -> RecordScan:
        """The records of ``buf[start:size]``; see :class:`RecordScan`."""
        return RecordScan(self, buf, start, len(buf) if size is None else size, resync)


# The layouts on disk, with the limits their files were written under; an owner may
# narrow them (the recording sets the fixed part every frame body has).
CRC_BEFORE_BODY = RecordLayout(crc_after_body=False, max_body=1 << 20)
CRC_AFTER_BODY = RecordLayout(crc_after_body=True, max_body=1 << 30)
# Eight bytes no msgpack event starts a record with by accident often: 0xC1 is the one
# byte msgpack never uses, and the rest spell the purpose.
SYNC_MARKER = b"\xc1BZSYNC\xc1"
SYNCED_CRC_BEFORE_BODY = RecordLayout(crc_after_body=False, max_body=1 << 20, sync=SYNC_MARKER)


def _bad_length(
    buf: Buffer, pos: int, size: int, length: int, layout: RecordLayout
) -> tuple[Reason, str]:
    """Why a record declaring an impossible ``length`` ends the scan."""
    if not bytes(buf[pos:size]).strip(b"\0"):
        # Some file systems leave zeros where a crash interrupted the last writes: that
        # is a cut-off file, not a damaged one.
        return "truncated", f"zero-filled tail of {size - pos} bytes at offset {pos}"
    return "length", (
        f"record at offset {pos} declares body_len={length}, which no writer produces "
        f"(limits {layout.min_body}..{layout.max_body})"
    )


class RecordScan:
    """Iterate over the verified records of a buffer; :attr:`end` says how it ended.

    Parameters
    ----------
    layout : RecordLayout
    buf : bytes-like or mmap
        The file's bytes.
    start : int
        Offset of the first record (the size of the file's own header).
    size : int
        Offset to scan up to.
    resync : bool
        Step over damage to the next verified record instead of stopping; each damaged
        region is appended to :attr:`gaps` before the next record is yielded.

    Attributes
    ----------
    end : ScanEnd or None
        Set when the iteration is exhausted; ``None`` before, or if the caller stopped
        early (the caller then knows better why).
    gaps : list of Gap
        Damaged regions stepped over so far (only with ``resync``).
    """

    def __init__(
        self, layout: RecordLayout, buf: Buffer, start: int, size: int, resync: bool = False
    ):
        self.layout = layout
        self.buf = buf
        self.start = start
        self.size = size
        self.resync = resync
        self.gaps: list[Gap] = []
        self.end: ScanEnd | None = None

    def _check(self, pos: int) -> tuple[int, int, Reason | None, str]:
        """Verify the record at ``pos``: (body start, record end, None, "") or the damage."""
        buf, size, layout = self.buf, self.size, self.layout
        head, sync = layout.header_size, layout.sync
        if pos + head > size:
            return 0, 0, "truncated", (
                f"record at offset {pos} is cut short inside its {head}-byte header"
            )
        if sync and buf[pos : pos + len(sync)] != sync:
            if not bytes(buf[pos:size]).strip(b"\0"):
                return 0, 0, "truncated", f"zero-filled tail of {size - pos} bytes at offset {pos}"
            return 0, 0, "sync", f"no record marker at offset {pos}"
        (length,) = _U32.unpack_from(buf, pos + len(sync))
        if not layout.min_body <= length <= layout.max_body:
            reason, detail = _bad_length(buf, pos, size, length, layout)
            return 0, 0, reason, detail
        body = pos + head
        body_end = body + length
        stop = body_end + 4 if layout.crc_after_body else body_end
        if stop > size:
            return 0, 0, "truncated", (
                f"record at offset {pos} needs {stop - pos} bytes, {size - pos} left"
            )
        if layout.crc_after_body:
            ok = zlib.crc32(buf[pos + len(sync) : body_end]) == _U32.unpack_from(buf, body_end)[0]
        else:
            ok = zlib.crc32(buf[body:body_end]) == _U32.unpack_from(buf, pos + len(sync) + 4)[0]
        if not ok:
            return 0, 0, "crc", f"record at offset {pos} fails its CRC-32 check"
        return body, body_end, None, ""

    def _next_good(self, pos: int) -> int:
        """Offset of the first record after ``pos`` that verifies; :attr:`size` if none."""
        buf, size, sync = self.buf, self.size, self.layout.sync
        cand = pos + 1
        while cand < size:
            if sync:
                # memoryview has no find(); the callers' buffers (bytes, mmap) do.
                found = buf.find(sync, cand, size)  # type: ignore[union-attr]
                if found < 0:
                    return size
                cand = found
            if self._check(cand)[2] is None:
                return cand
            cand += 1
        return size

    def __iter__(self) -> Iterator[Span]:
        buf, size, layout = self.buf, self.size, self.layout
        head, lo, hi = layout.header_size, layout.min_body, layout.max_body
        after, sync = layout.crc_after_body, layout.sync
        ns = len(sync)
        # Bound once: this loop runs once per record of files with millions of them;
        # the checks are inline, and _check (slower, with reasons) runs only on damage.
        unpack_u32, crc32 = _U32.unpack_from, zlib.crc32
        pos, n = self.start, 0
        first: tuple[int, Reason, str] | None = None
        while pos < size:
            ok = pos + head <= size and (not ns or buf[pos : pos + ns] == sync)
            if ok:
                (length,) = unpack_u32(buf, pos + ns)
                body = pos + head
                body_end = body + length
                stop = body_end + 4 if after else body_end
                ok = lo <= length <= hi and stop <= size
                if ok and after:
                    ok = crc32(buf[pos + ns : body_end]) == unpack_u32(buf, body_end)[0]
                elif ok:
                    ok = crc32(buf[body:body_end]) == unpack_u32(buf, pos + ns + 4)[0]
            if ok:
                yield Span(pos, body, body_end)
                n += 1
                pos = stop
                continue
            _, _, reason, detail = self._check(pos)
            assert reason is not None  # the inline checks and _check agree
            if first is None:
                first = (pos, reason, detail)
            if not self.resync:
                break
            nxt = self._next_good(pos)
            if reason == "truncated" and nxt < size:
                reason = "length"  # records follow: this was damage, not a cut
            self.gaps.append(Gap(pos, nxt, reason, detail))
            pos = nxt
        if first is None:
            self.end = ScanEnd(pos, n, size, None, f"{size - self.start} bytes of records, clean")
        elif not self.resync:
            self.end = ScanEnd(first[0], n, size, first[1], first[2])
        else:
            last = self.gaps[-1]
            tail = last.reason if last.end == size else None
            offset = last.offset if tail else size
            detail = f"{len(self.gaps)} damaged region(s), first: {first[2]}"
            self.end = ScanEnd(offset, n, size, tail, detail, tuple(self.gaps))

    def finished(self) -> ScanEnd:
        """:attr:`end`, for a caller that has exhausted the iteration.

        Raises
        ------
        RuntimeError
            If the iteration has not run to its end.
        """
        if self.end is None:
            raise RuntimeError("the record scan was not run to its end")
        return self.end
