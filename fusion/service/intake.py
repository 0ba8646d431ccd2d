"""The raw-input record: every batch the service accepted, in rotated recordings.

A disputed alert must point at the detections behind it, byte for byte as they
arrived. :class:`IntakeRecorder` appends each accepted ``[topic, payload]`` to a
recording (:mod:`fusion.recordfile`, the format ``bufferzone replay`` reads) in
``intake_dir``, stamped with the service's UTC receive time. When CURVE is on, the
key a sensor published with is written as an ``auth.<sensor id>`` frame (msgpack map
``{"type": "auth", "sensor_id", "user_id"}``) before that sensor's first batch in each
file and whenever its key changes; replays skip those frames.

Files are named ``intake-<UTC start, YYYYmmddTHHMMSSZ>-<n>.bzrec``; a new one starts
after ``rotate_bytes`` or ``rotate_seconds``, and files whose newest data is older than
``retention`` seconds are removed (0 keeps everything). The current file is flushed at
least every second, so a crash loses at most that much of the raw input (the alert
log, which is fsynced, never loses an alert).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusion.messages import pack_map
from fusion.recordfile import RecordingError, RecordingWriter

__all__ = ["IntakeRecorder", "intake_files"]

log = logging.getLogger(__name__)

PATTERN = "intake-*.bzrec"


def intake_files(directory: str | Path) -> list[Path]:
    """The intake recordings of ``directory``, oldest first (by name: the start time)."""
    return sorted(Path(directory).glob(PATTERN))


class IntakeRecorder:
    """Append accepted messages to rotated recordings.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    rotate_bytes : int
        Start a new file once the current one holds this many bytes.
    rotate_seconds : float
        ... or is this old.
    retention : float
        Seconds a finished file is kept after its last write; 0 keeps every file.
    metadata : dict, optional
        Stored in each file's header (the service's zones, origin and rules).
    wall : callable
        UTC epoch clock.
    """

    def __init__(self, directory: str | Path, rotate_bytes: int = 256 << 20,
                 rotate_seconds: float = 3600.0, retention: float = 30 * 86400.0,
                 metadata: dict[str, Any] | None = None,
                 wall: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = int(rotate_bytes)
        self.rotate_seconds = float(rotate_seconds)
        self.retention = float(retention)
        self.metadata = dict(metadata or {})
        self.wall = wall
        self.failed = 0
        self.frames = 0
        self._writer: RecordingWriter | None = None
        self._opened = 0.0
        self._keys: dict[str, str | None] = {}
        self._n = 0

    def _rotate(self, now: float) -> RecordingWriter:
        if self._writer is not None:
            self._writer.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        while True:
            path = self.directory / f"intake-{stamp}-{self._n:04d}.bzrec"
            self._n += 1
            if not path.exists():
                break
        meta = {"kind": "intake", "writer": "bufferzone track", **self.metadata}
        self._writer = RecordingWriter(path, meta, t_start=now, flush_interval=1.0)
        self._opened = now
        self._keys.clear()  # each file names the keys of its own batches
        self._expire(now)
        return self._writer

    def _expire(self, now: float) -> None:
        if self.retention <= 0:
            return
        current = self._writer.path if self._writer is not None else None
        for path in intake_files(self.directory):
            if path != current and now - path.stat().st_mtime > self.retention:
                path.unlink(missing_ok=True)
                log.info("intake recording %s is past its retention, removed", path.name)

    def write(self, topic: bytes, payload: bytes, sensor_id: str,
              user_id: str | None = None) -> None:
        """Record one accepted message; a full disk is counted, never raised."""
        now = self.wall()
        try:
            writer = self._writer
            if (writer is None or writer.bytes_written >= self.rotate_bytes
                    or now - self._opened >= self.rotate_seconds):
                writer = self._rotate(now)
            if user_id is not None and self._keys.get(sensor_id) != user_id:
                writer.write(now, b"auth." + sensor_id.encode("ascii"),
                             pack_map({"type": "auth", "sensor_id": sensor_id,
                                       "user_id": user_id}))
                self._keys[sensor_id] = user_id
            writer.write(now, topic, payload)
            self.frames += 1
        except (OSError, RecordingError) as exc:
            self.failed += 1
            if self.failed <= 5:
                log.error("intake recording failed (%d so far): %s", self.failed, exc)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the current file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def status(self) -> dict[str, Any]:
        return {"dir": str(self.directory), "frames": self.frames, "failed": self.failed,
                "file": None if self._writer is None else self._writer.path.name}
