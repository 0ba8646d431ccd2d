"""The durable alert log: every alert event, appended to disk before it is published.

The file format and its reader are :mod:`fusion.service.logfile` (re-exported here);
this module is the one writer. Records are only ever appended and nothing is ever cut:
:class:`AlertLog`, on opening, copies every damaged region byte for byte to
``<log>.quarantine`` (:mod:`fusion.service.quarantine`), records what it found in a
chained NOTE record, and appends after it; readers step over the damage at the next
sync marker. :meth:`AlertLog.sign_head` signs the chain head
(:mod:`fusion.service.chain`).
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import struct
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

from fusion.framing import Gap
from fusion.messages import pack_map
from fusion.service import chain
from fusion.service.chain import EVENT, HEAD, NOTE, Signer
from fusion.service.logfile import (
    _LOG_ID,
    MAGIC,
    MAGIC_V1,
    MAX_RECORD_BYTES,
    RECORDS,
    RECORDS_V1,
    AlertLogError,
    LogReport,
    _read,
    open_alerts_from_events,
    read_alert_entries,
    read_alert_log,
    rebuild_open_alerts,
)
from fusion.service.quarantine import keep, quarantine_path

__all__ = [
    "MAGIC",
    "MAGIC_V1",
    "AlertLog",
    "AlertLogError",
    "LogReport",
    "open_alerts_from_events",
    "read_alert_entries",
    "read_alert_log",
    "rebuild_open_alerts",
]

log = logging.getLogger(__name__)


class AlertLog:
    """Append-only writer of the alert log (version 2, or a version-1 file as found).

    Parameters
    ----------
    path : str or path
        The file; created (with a new log id) if missing.
    fsync : bool
        Whether every append also calls ``os.fsync``: survives a power cut, at the cost
        of a disk round trip per append. Without it an append survives a crash of
        this process (the data is in the kernel) but not of the machine.
    signer : Signer, optional
        Signs the chain head (:meth:`sign_head`); without one heads are not signed.

    Attributes
    ----------
    recovery : LogReport
        What was found on opening, with the regions copied to the quarantine file.
    records : int
        Sequence number the next record gets (version 1: records so far).
    signed : dict or None
        The newest signed head (:meth:`sign_head`), the witness ``status`` carries.

    Raises
    ------
    AlertLogError
        If the file exists and is not an alert log, or another process holds it.
    """

    def __init__(self, path: str | PathLike[str], fsync: bool = False,
                 signer: Signer | None = None):
        self.path = Path(path)
        self.fsync = fsync
        self.signer = signer
        self.signed: dict[str, Any] | None = None
        self._f: BinaryIO | None = None
        f = open(self.path, "a+b")  # creates the file, never clobbers it
        try:
            self._lock(f)
            report = self._open(f)
        except BaseException:
            f.close()
            raise
        self.recovery = report
        self._f = f
        if report.quarantined and any(q["new"] for q in report.quarantined):
            self._note(report)
            self.sign_head("damage found on open")

    def _open(self, f: BinaryIO) -> LogReport:
        """Read what is there, quarantine damage, and set where the chain continues."""
        path = str(self.path)
        data = Path(path).read_bytes() if os.fstat(f.fileno()).st_size < len(MAGIC) else None
        if data is not None and (MAGIC.startswith(data) or MAGIC_V1.startswith(data)):
            # New, or a crash while creating it: only part of a magic, no record.
            if data:
                keep(path, data, [Gap(0, len(data), "truncated", "torn header")])
            f.truncate(0)
            self.log_id = os.urandom(_LOG_ID)
            header = MAGIC + self.log_id
            f.write(header + struct.pack("<I", zlib.crc32(header)))
            self._sync(f, force=True)
            self.version, self.records, self._last = 2, 0, chain.genesis(header)
            return LogReport(path, 0, 0, len(data), "truncated" if data else None,
                             "torn header replaced" if data else "new log")
        lf, _, report = _read(path)
        assert lf is not None  # a file longer than the magic always parses or raises
        self.version, self.log_id = lf.version, lf.log_id
        own = [r for r in lf.records if r.log_id == lf.log_id]
        top = max(own, key=lambda r: r.seq, default=None)
        self.records = 0 if top is None else top.seq + 1
        self._last = chain.genesis(lf.header) if top is None else top.hash
        if lf.gaps:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data_map:
                regions = keep(path, data_map, lf.gaps, lf.log_id)
            report = replace(report, quarantined=tuple(regions))
            log.error("alert log %s: %s; %d damaged region(s) copied to %s, nothing cut; "
                      "alerts affected: %s", path, report.detail, len(regions),
                      quarantine_path(path), ", ".join(report.affected_alerts) or "none")
        elif not report.ok:
            log.error("alert log %s: %s", path, report.detail)
        return report

    def _note(self, report: LogReport) -> None:
        """Record, in the chain itself, what was found on opening and where it went."""
        if self.version != 2:
            return
        regions = [{k: q[k] for k in ("offset", "length", "sha256", "reason")}
                   for q in report.quarantined]
        self.append_record(NOTE, {"type": "damage", "t": time.time(), "regions": regions,
                                  "quarantine": quarantine_path(self.path).name,
                                  "findings": list(report.findings),
                                  "affected_alerts": list(report.affected_alerts)})

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

    def _encode(self, kind: int, payload: bytes) -> bytes:
        if len(payload) > MAX_RECORD_BYTES:
            raise AlertLogError(f"alert log record of {len(payload)} bytes exceeds "
                                f"{MAX_RECORD_BYTES}")
        if self.version == 1:
            return RECORDS_V1.encode(payload)
        body = chain.pack_body(kind, self.records, self.log_id, self._last, payload)
        self._last = hashlib.sha256(body).digest()
        self.records += 1
        return RECORDS.encode(body)

    def _write(self, items: Sequence[tuple[int, bytes]]) -> list[int]:
        if self._f is None:
            raise AlertLogError(f"alert log {self.path} is closed")
        offset = self._f.seek(0, os.SEEK_END)
        chunks, offsets = [], []
        state = (self.records, self._last)
        try:
            for kind, payload in items:
                chunks.append(self._encode(kind, payload))
                offsets.append(offset)
                offset += len(chunks[-1])
        except AlertLogError:
            self.records, self._last = state  # nothing was written: the chain is unchanged
            raise
        # One write of whole records: a crash tears at most the last one, which the
        # next open quarantines and steps over.
        self._f.write(b"".join(chunks))
        self._sync(self._f)
        if self.version == 1:
            self.records += len(offsets)
        return offsets

    def append(self, event: Mapping[str, Any]) -> int:
        """Write one event and flush it (and fsync, if configured); its byte offset."""
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[Mapping[str, Any]]) -> list[int]:
        """Write several events with one flush (and one fsync); their offsets."""
        return self._write([(EVENT, pack_map(dict(e))) for e in events])

    def append_record(self, kind: int, payload: Mapping[str, Any]) -> int:
        """Write one non-event record (a NOTE or CONFIG map; version 2 only)."""
        if self.version == 1:
            raise AlertLogError(f"{self.path} is a version-1 log: it holds events only")
        return self._write([(kind, pack_map(dict(payload)))])[0]

    @property
    def head(self) -> dict[str, Any]:
        """``{"seq", "hash"}`` of the newest record (empty for version 1 or no record)."""
        if self.version == 1 or self.records == 0:
            return {}
        return {"seq": self.records - 1, "hash": self._last.hex()}

    def sign_head(self, reason: str = "interval") -> dict[str, Any] | None:
        """Sign the newest record's hash and append the signature as a HEAD record.

        Nothing is written when there is no signer, the log is version 1, or nothing
        was appended since the last signature (except at ``"shutdown"``). Returns the
        witness (log id, seq, head, signature, public key, time, reason) that ``status``
        publishes, or None.
        """
        if self.signer is None or self.version == 1 or self.records == 0:
            return None
        seq = self.records - 1
        if self.signed is not None and self.signed["seq"] + 1 == seq and reason != "shutdown":
            return self.signed  # only our own HEAD record since: nothing new to sign
        # A shutdown head is always written: it marks a clean stop, after which any
        # event before the next run's CONFIG record was appended by someone else.
        head = self._last
        sig = self.signer.sign(chain.head_message(self.log_id, seq, head))
        witness = {"log_id": self.log_id.hex(), "seq": seq, "head": head.hex(),
                   "sig": sig.hex(), "key": self.signer.public.hex(), "t": time.time(),
                   "reason": reason}
        self._write([(HEAD, pack_map({"seq": seq, "head": head, "sig": sig,
                                      "key": self.signer.public, "t": witness["t"],
                                      "reason": reason}))])
        self.signed = witness
        return witness

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
