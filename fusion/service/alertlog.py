"""The durable alert log: every alert event, appended to disk before it is published.

File layout::

    magic     8 bytes   b"BZALOG1\\n"
    record*   length    4 bytes, little-endian uint32: payload size in bytes
              crc       4 bytes, little-endian uint32: zlib.crc32 of the payload
              payload   one msgpack map (fusion.messages.pack_map: the event plus "v")

The records are :mod:`fusion.framing`'s ``CRC_BEFORE_BODY`` layout; that module
writes them and checks them on reading. Records are only ever appended. A crash can
leave a torn last record; a bad disk can flip bits anywhere. :func:`read_alert_log`
checks every record's length and CRC and stops at the first one that does not verify,
reporting the byte offset where the valid log ends and why. :class:`AlertLog` refuses
to append after damage: opening a file whose tail does not verify truncates it to its
valid prefix and reports that (in :attr:`AlertLog.recovery` and as a logged warning),
so nothing is ever appended after garbage and nothing corrupt is accepted silently. A
file that does not start with the magic is not touched at all.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

from fusion.framing import CRC_BEFORE_BODY
from fusion.messages import WireError, pack_map, unpack_map

__all__ = [
    "MAGIC",
    "AlertLog",
    "AlertLogError",
    "LogReport",
    "open_alerts_from_events",
    "read_alert_log",
    "rebuild_open_alerts",
]

log = logging.getLogger(__name__)

MAGIC = b"BZALOG1\n"
# The records: length, CRC-32 of the payload, payload (see fusion.framing). An alert
# event is a few hundred bytes; a length past MAX_RECORD_BYTES is corruption, not
# data, and must not make the reader allocate it.
RECORDS = CRC_BEFORE_BODY
MAX_RECORD_BYTES = RECORDS.max_body


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
        Records that verified.
    valid_bytes : int
        Byte offset where the verified part ends (the offset of the first bad record).
    file_bytes : int
        Size of the file as found.
    error : str or None
        Why reading stopped before the end: ``"truncated"`` (a torn last record),
        ``"length"`` (an impossible record length), ``"crc"`` (checksum mismatch) or
        ``"payload"`` (checksum fine but not a valid event map); ``None`` if clean.
    detail : str
        A sentence for a person, with the offset.
    truncated : bool
        Whether :class:`AlertLog` cut the file back to ``valid_bytes``.
    """

    path: str
    records: int
    valid_bytes: int
    file_bytes: int
    error: str | None = None
    detail: str = ""
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when every byte of the file verified."""
        return self.error is None


def _scan_file(f: BinaryIO, path: str) -> tuple[list[dict[str, Any]], LogReport]:
    """Verify a whole log through a read-only map of ``f`` (no copy of the file)."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:  # mmap refuses empty files
        return _scan(b"", path)
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _scan(data, path)


def _scan(data: bytes | mmap.mmap, path: str) -> tuple[list[dict[str, Any]], LogReport]:
    """Verify the magic and every record of a whole log held in ``data``."""
    file_bytes = len(data)
    head = data[: len(MAGIC)]
    if head != MAGIC:
        if file_bytes < len(MAGIC) and MAGIC.startswith(head):
            # A crash while creating the file: no records were ever written.
            return [], LogReport(
                path,
                0,
                0,
                file_bytes,
                "truncated",
                f"file ends inside the {len(MAGIC)}-byte header at offset {file_bytes}",
            )
        raise AlertLogError(f"{path} is not a bufferzone alert log (bad magic {head[:8]!r})")
    events: list[dict[str, Any]] = []
    scan = RECORDS.scan(data, len(MAGIC))
    for span in scan:
        try:
            event = unpack_map(data[span.start : span.end])
        except WireError as exc:
            # The frame verified but its body is no event: stop here like any damage.
            detail = f"record at offset {span.offset} is not an event map ({exc})"
            return events, LogReport(
                path, len(events), span.offset, file_bytes, "payload", detail
            )
        event.pop("v", None)
        events.append(event)
    end = scan.finished()
    detail = end.detail if end.reason else f"{len(events)} records, {end.offset} bytes, clean"
    return events, LogReport(path, len(events), end.offset, file_bytes, end.reason, detail)


def read_alert_log(path: str | PathLike[str]) -> tuple[list[dict[str, Any]], LogReport]:
    """Read and verify a whole alert log.

    Parameters
    ----------
    path : str or path
        The log file.

    Returns
    -------
    events : list of dict
        The events of every record that verified, in order (without the ``v`` key).
    report : LogReport
        Where the valid part ends and, if it ends early, why.

    Raises
    ------
    AlertLogError
        If the file is not an alert log (wrong magic); OSError if it cannot be read.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _scan_file(f, path)


def open_alerts_from_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The latest event of each alert that has no ``close`` event, in opening order.

    Parameters
    ----------
    events : iterable of dict
        Alert events in log order.
    """
    latest: dict[str, dict[str, Any]] = {}
    for ev in events:
        alert_id = ev["alert_id"]
        if ev["event"] == "close":
            latest.pop(alert_id, None)
        elif ev["event"] == "open":
            latest[alert_id] = dict(ev)
        elif alert_id in latest:
            # An update of an alert opened before the log started is ignored: the log
            # does not know it as open.
            latest[alert_id] = dict(ev)
    return list(latest.values())


def rebuild_open_alerts(path: str | PathLike[str]) -> tuple[list[dict[str, Any]], LogReport]:
    """Open alerts according to a log on disk (e.g. after a restart), and its report."""
    events, report = read_alert_log(path)
    return open_alerts_from_events(events), report


class AlertLog:
    """Append-only writer of the alert log.

    Parameters
    ----------
    path : str or path
        The file; created (with its magic) if missing.
    fsync : bool
        Whether every append also calls ``os.fsync``: survives a power cut, at the cost
        of a disk round trip per append. Without it an append survives a crash of
        this process (the data is in the kernel) but not of the machine.

    Attributes
    ----------
    recovery : LogReport
        What was found on opening; ``recovery.truncated`` says whether a damaged tail
        was cut off.

    Raises
    ------
    AlertLogError
        If the file exists and is not an alert log, or another process holds it.
    """

    def __init__(self, path: str | PathLike[str], fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self._f: BinaryIO | None = None
        f = open(self.path, "a+b")  # creates the file, never clobbers it
        try:
            self._lock(f)
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                report = LogReport(str(self.path), 0, 0, 0, None, "new log")
            else:
                _, report = _scan_file(f, str(self.path))
            if report.error is not None or size == 0:
                if report.error is not None:
                    log.warning(
                        "alert log %s: %s; truncating to %d valid bytes (%d records kept)",
                        self.path,
                        report.detail,
                        report.valid_bytes,
                        report.records,
                    )
                    report = LogReport(
                        report.path,
                        report.records,
                        report.valid_bytes,
                        report.file_bytes,
                        report.error,
                        report.detail,
                        truncated=True,
                    )
                f.truncate(report.valid_bytes)
                if report.valid_bytes < len(MAGIC):
                    f.truncate(0)
                    f.write(MAGIC)
                self._sync(f, force=True)
        except BaseException:
            f.close()
            raise
        self.recovery = report
        self._f = f
        self.records = report.records

    @staticmethod
    def _lock(f: BinaryIO) -> None:
        # Two writers would interleave records; one log has one writer.
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks to take
            return
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AlertLogError(f"{f.name} is locked by another writer") from None

    def _sync(self, f: BinaryIO, force: bool = False) -> None:
        f.flush()
        if self.fsync or force:
            os.fsync(f.fileno())

    def append(self, event: Mapping[str, Any]) -> int:
        """Write one event and flush it (and fsync, if configured) before returning.

        Parameters
        ----------
        event : dict
            An alert event (any msgpack-able map).

        Returns
        -------
        int
            Byte offset of the record.
        """
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[Mapping[str, Any]]) -> list[int]:
        """Write several events with one flush (and one fsync); their offsets."""
        if self._f is None:
            raise AlertLogError(f"alert log {self.path} is closed")
        chunks, offsets = [], []
        offset = self._f.seek(0, os.SEEK_END)
        for event in events:
            payload = pack_map(dict(event))
            if len(payload) > MAX_RECORD_BYTES:
                raise AlertLogError(
                    f"alert event of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}"
                )
            chunks.append(RECORDS.encode(payload))
            offsets.append(offset)
            offset += len(chunks[-1])
        # One write of whole records: a crash tears at most the last one, which the
        # reader detects and the next open cuts off.
        self._f.write(b"".join(chunks))
        self._sync(self._f)
        self.records += len(offsets)
        return offsets

    def close(self) -> None:
        """Flush, sync and close (idempotent)."""
        if self._f is not None:
            try:
                self._sync(self._f, force=True)
            finally:
                self._f.close()
                self._f = None

    def __enter__(self) -> AlertLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
