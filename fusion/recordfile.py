"""The recording file's format constants and its writer (the reader is ``replay.recording``).

A recording is the raw message stream as received; its layout is documented in
:mod:`replay.recording`. The writer lives here, in the top of ``fusion``, because the
tracker service also writes recordings: of every batch it accepted
(:mod:`fusion.service.intake`), so that each alert can point at the detections behind
it. ``fusion`` may not import ``replay``; ``replay`` re-exports all of this.
"""

from __future__ import annotations

import math
import os
import struct
import time
import zlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import msgpack

from fusion.framing import CRC_AFTER_BODY

__all__ = [
    "FORMAT_VERSION",
    "FRAMES",
    "MAGIC",
    "MAX_FRAME_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_TOPIC_BYTES",
    "RecordingError",
    "RecordingWriter",
]

MAGIC = b"\x89BZREC\r\n"
FORMAT_VERSION = 1
# One frame may hold at most this many body bytes. The wire schema caps payloads at
# 64 MiB; the margin leaves room for it to grow. A larger length prefix cannot come
# from a writer of this format, so the reader calls it corruption, not truncation.
MAX_FRAME_BYTES = 1 << 30
MAX_TOPIC_BYTES = 0xFFFF
MAX_METADATA_BYTES = 16 * 1024 * 1024

_HEADER = struct.Struct("<8sHHdI")  # magic, version, flags, t_start, meta_len
_BODY_HEAD = struct.Struct("<dH")  # t_recv, topic_len: the fixed start of every body
_CRC = struct.Struct("<I")
_FRAME_FIXED = _BODY_HEAD.size
# The frames: length, body, CRC-32 of length and body (fusion.framing's layout).
FRAMES = replace(CRC_AFTER_BODY, max_body=MAX_FRAME_BYTES, min_body=_FRAME_FIXED)
_FRAME_OVERHEAD = FRAMES.overhead

class RecordingError(Exception):
    """A file that is not a readable recording, or a write that cannot be recorded."""



def _pack_metadata(metadata: Mapping[str, Any] | None) -> bytes:
    if metadata is None:
        return b""
    if not isinstance(metadata, Mapping):
        raise RecordingError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        packed = msgpack.packb(dict(metadata), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RecordingError(f"metadata cannot be stored as msgpack: {exc}") from None
    if len(packed) > MAX_METADATA_BYTES:
        raise RecordingError(f"metadata of {len(packed)} bytes exceeds {MAX_METADATA_BYTES}")
    # Refuse at write time what the reader would refuse (e.g. non-str keys), so a
    # recording that was written can always be read.
    _unpack_metadata(packed)
    return packed


def _unpack_metadata(packed: bytes) -> dict[str, Any]:
    if not packed:
        return {}
    try:
        obj = msgpack.unpackb(packed, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types on bad bytes
        raise RecordingError(
            f"metadata is not valid msgpack ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict):
        raise RecordingError(f"metadata must be a msgpack map, got {type(obj).__name__}")
    return obj

class RecordingWriter:
    """Append messages to a new recording file.

    Frames go through a buffered file; what is in the buffer when the process dies is
    lost, and the reader then reports a truncated file that is good up to the last
    frame that reached the OS. The flush policy bounds that loss: the buffer is handed
    to the OS at least every ``flush_interval`` seconds of wall time (checked on each
    write, and whenever the owner calls :meth:`flush`, e.g. on an idle poll), and
    ``fsync=True`` also forces it to disk on each flush (surviving power loss, at a
    cost in throughput).

    Parameters
    ----------
    path : str or Path
        File to create.
    metadata : mapping, optional
        Scenario metadata stored in the header (msgpack map with str keys).
    t_start : float, optional
        Start time written in the header; defaults to the current UTC epoch time.
    flush_interval : float
        Longest wall time, in seconds, between a write and its hand-over to the OS.
        ``0`` flushes after every frame.
    buffer_size : int
        Size of the write buffer, bytes.
    fsync : bool
        Call ``os.fsync`` on every flush.
    overwrite : bool
        Replace an existing file; by default an existing file is never clobbered.

    Examples
    --------
    >>> with RecordingWriter("run.bzrec", metadata={"scenario": "crossing"}) as rec:
    ...     rec.write(12.5, b"det.drone.uav-3", payload)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        t_start: float | None = None,
        flush_interval: float = 1.0,
        buffer_size: int = 1 << 20,
        fsync: bool = False,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        self.t_start = time.time() if t_start is None else float(t_start)
        if not math.isfinite(self.t_start):
            raise RecordingError(f"t_start {self.t_start!r} is not finite")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0, got {flush_interval}")
        self.flush_interval = float(flush_interval)
        self.fsync = fsync
        self.frames = 0
        self._last_flush = time.monotonic()
        meta = _pack_metadata(metadata)
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, self.t_start, len(meta)) + meta
        self._file: BinaryIO | None = open(  # closed by close(): the writer outlives __init__
            self.path, "wb" if overwrite else "xb", buffering=buffer_size
        )
        self._file.write(head + _CRC.pack(zlib.crc32(head)))
        self.bytes_written = len(head) + _CRC.size
        # The header goes to the OS at once: a file with a torn header is unreadable,
        # one with a torn frame is not.
        self.flush()

    def write(
        self, t_recv: float, topic: bytes | str, payload: bytes | bytearray | memoryview
    ) -> None:
        """Append one message.

        Parameters
        ----------
        t_recv : float
            Receive time, seconds (finite).
        topic : bytes or str
            ZeroMQ topic; a str is encoded as ASCII.
        payload : bytes-like
            Message payload, stored byte for byte.

        Raises
        ------
        RecordingError
            If the writer is closed, or the frame cannot be represented.
        """
        f = self._file
        if f is None:
            raise RecordingError(f"{self.path}: write after close")
        if isinstance(topic, str):
            topic = topic.encode("ascii")
        t_recv = float(t_recv)
        if not math.isfinite(t_recv):
            raise RecordingError(f"t_recv {t_recv!r} is not finite")
        if len(topic) > MAX_TOPIC_BYTES:
            raise RecordingError(f"topic of {len(topic)} bytes exceeds {MAX_TOPIC_BYTES}")
        payload_len = memoryview(payload).nbytes
        body_len = _FRAME_FIXED + len(topic) + payload_len
        if body_len > MAX_FRAME_BYTES:
            raise RecordingError(f"frame of {body_len} bytes exceeds {MAX_FRAME_BYTES}")
        # The payload is handed to the file as it is, never copied into one frame.
        f.writelines(FRAMES.pieces(_BODY_HEAD.pack(t_recv, len(topic)), topic, payload))
        self.frames += 1
        self.bytes_written += body_len + _FRAME_OVERHEAD
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Hand buffered frames to the OS (and to disk if ``fsync``)."""
        if self._file is None:
            return
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close; further writes raise. Closing twice is harmless."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
