"""The recording file: the raw message stream as received, in one append-only file.

A recording holds every ``[topic, payload]`` message exactly as it arrived, with its
receive time, so that a replay can publish the same bytes again and the tracker gives
the same tracks and alerts every time. It knows nothing about what the payloads mean.

File format, version 1 (all integers and floats little-endian)::

    header
      offset  size  field
      0       8     magic        b"\\x89BZREC\\r\\n"
      8       2     version      uint16, FORMAT_VERSION (1)
      10      2     flags        uint16, 0 (reserved)
      12      8     t_start      float64, seconds (UTC epoch or scenario time)
      20      4     meta_len     uint32, length L of the metadata (0 = none)
      24      L     metadata     one msgpack map with str keys (scenario name, seed, ...)
      24+L    4     header_crc   uint32, CRC-32 of bytes [0, 24+L)

    then zero or more frames, back to back
      offset  size  field
      0       4     body_len     uint32, B = 10 + T + P
      4       8     t_recv       float64, receive time, seconds
      12      2     topic_len    uint16, T
      14      T     topic        bytes (ASCII ZeroMQ topic)
      14+T    P     payload      bytes (msgpack payload as received)
      4+B     4     crc          uint32, CRC-32 of bytes [0, 4+B) of this frame

The frames are :mod:`fusion.framing`'s ``CRC_AFTER_BODY`` records; that module also
reads them back and finds where a damaged tail begins. The magic starts with a
non-ASCII byte and holds ``\\r\\n`` (as PNG's does) so that a file mangled by a
text-mode transfer is refused rather than misread. Each frame carries its own CRC so
that a flipped bit is reported as corruption instead of being replayed.

A writer that crashes leaves a file whose last frame may be cut short. Readers stop at
the last whole frame and say where (:class:`RecordingReport`); everything before that
point is intact and usable. A frame whose CRC does not match is corruption: by default
it raises :class:`RecordingCorrupt`, or, with ``on_corrupt="stop"``, ends the read like
a truncation does.
"""

from __future__ import annotations

import mmap
import os
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np

from fusion.recordfile import (  # noqa: F401  (re-exported: the format's one definition)
    _BODY_HEAD,
    _CRC,
    _FRAME_FIXED,
    _FRAME_OVERHEAD,
    _HEADER,
    FORMAT_VERSION,
    FRAMES,
    MAGIC,
    MAX_FRAME_BYTES,
    MAX_METADATA_BYTES,
    MAX_TOPIC_BYTES,
    RecordingError,
    RecordingWriter,
    _pack_metadata,
    _unpack_metadata,
)


class RecordingCorrupt(RecordingError):
    """A frame failed its CRC or declared an impossible length.

    Attributes
    ----------
    offset : int
        Byte offset of the start of the bad frame.
    frame_index : int
        Number of whole frames before it (the bad frame's zero-based index).
    """

    def __init__(self, message: str, offset: int, frame_index: int):
        super().__init__(message)
        self.offset = offset
        self.frame_index = frame_index


class RecordingWarning(UserWarning):
    """Issued when a read ends before the end of the file (truncation or corruption)."""


class Frame(NamedTuple):
    """One recorded message.

    Attributes
    ----------
    t_recv : float
        Receive time in seconds.
    topic : bytes
        ZeroMQ topic, e.g. ``b"det.drone.uav-3"``.
    payload : bytes
        The message payload, byte for byte as received.
    """

    t_recv: float
    topic: bytes
    payload: bytes


@dataclass(frozen=True)
class RecordingHeader:
    """What the file header says.

    Attributes
    ----------
    version : int
        Format version of the file.
    t_start : float
        Start time of the recording, seconds.
    metadata : dict
        Scenario metadata (empty when none was written).
    size : int
        Header length in bytes: the offset of the first frame.
    """

    version: int
    t_start: float
    metadata: dict[str, Any]
    size: int


@dataclass(frozen=True)
class RecordingReport:
    """How a read ended, for a person or a CLI to print.

    Attributes
    ----------
    path : str
        The file read.
    status : {"complete", "truncated", "corrupt"}
        ``complete``: every byte belongs to a whole, valid frame. ``truncated``: the
        file ends inside a frame (typically a writer that crashed). ``corrupt``: a
        frame failed its CRC or declared an impossible length, and the read stopped
        there (only with ``on_corrupt="stop"``; otherwise an exception is raised).
    frames : int
        Whole, valid frames read.
    end_offset : int
        Byte offset just after the last whole frame: where the good data ends, and
        where a repair would cut the file.
    file_size : int
        Size of the file when it was opened.
    detail : str
        What was found at ``end_offset`` when the read stopped early; empty otherwise.
    """

    path: str
    status: Literal["complete", "truncated", "corrupt"]
    frames: int
    end_offset: int
    file_size: int
    detail: str = ""

    @property
    def complete(self) -> bool:
        """True when the whole file was read."""
        return self.status == "complete"

    @property
    def bytes_ignored(self) -> int:
        """Bytes after the last whole frame that were not read."""
        return self.file_size - self.end_offset

    def message(self) -> str:
        """One line describing the outcome."""
        if self.complete:
            return f"{self.path}: {self.frames} frames, complete"
        return (
            f"{self.path}: {self.status} after {self.frames} whole frames at byte "
            f"{self.end_offset} of {self.file_size} ({self.bytes_ignored} bytes ignored): "
            f"{self.detail}"
        )


def _parse_header(buf: bytes | mmap.mmap, path: str) -> RecordingHeader:
    size = len(buf)
    if size < len(MAGIC) or buf[: len(MAGIC)] != MAGIC:
        raise RecordingError(
            f"{path}: not a bufferzone recording (magic {bytes(buf[: len(MAGIC)])!r}, "
            f"expected {MAGIC!r})"
        )
    if size < _HEADER.size:
        raise RecordingError(f"{path}: header cut short ({size} of {_HEADER.size}+ bytes)")
    _, version, _flags, t_start, meta_len = _HEADER.unpack_from(buf, 0)
    # The version is checked before the CRC: a newer file may lay out its header
    # differently, and "unsupported version" is the error a person can act on.
    if version != FORMAT_VERSION:
        raise RecordingError(
            f"{path}: recording format version {version} is not supported "
            f"(this build reads version {FORMAT_VERSION})"
        )
    if meta_len > MAX_METADATA_BYTES:
        raise RecordingError(
            f"{path}: header declares {meta_len} bytes of metadata; corrupt header"
        )
    end = _HEADER.size + meta_len
    if size < end + _CRC.size:
        raise RecordingError(f"{path}: header cut short ({size} of {end + _CRC.size} bytes)")
    (crc,) = _CRC.unpack_from(buf, end)
    if zlib.crc32(buf[:end]) != crc:
        raise RecordingError(f"{path}: header CRC mismatch; corrupt header")
    return RecordingHeader(
        version=version,
        t_start=t_start,
        metadata=_unpack_metadata(bytes(buf[_HEADER.size : end])),
        size=end + _CRC.size,
    )


class RecordingReader:
    """Iterate over the frames of a recording; read the header on open.

    The file is memory-mapped, so iteration costs a few struct unpacks and one CRC
    per frame and no Python work per byte. After iteration ends, :attr:`report` says
    how it ended; when it ended early a :class:`RecordingWarning` is also issued.

    Parameters
    ----------
    path : str or Path
        Recording to read.
    on_corrupt : {"raise", "stop"}
        What a frame with a bad CRC or an impossible length does: raise
        :class:`RecordingCorrupt`, or end the iteration with a ``"corrupt"`` report.

    Raises
    ------
    RecordingError
        On open, when the file is not a recording or has an unsupported version.
    """

    def __init__(
        self, path: str | os.PathLike[str], on_corrupt: Literal["raise", "stop"] = "raise"
    ):
        if on_corrupt not in ("raise", "stop"):
            raise ValueError(f"on_corrupt must be 'raise' or 'stop', got {on_corrupt!r}")
        self.path = str(path)
        self.on_corrupt = on_corrupt
        self.report: RecordingReport | None = None
        with open(self.path, "rb") as f:
            self.file_size = os.fstat(f.fileno()).st_size
            # mmap refuses empty files; an empty file is just "not a recording".
            self._buf: bytes | mmap.mmap = (
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.file_size else b""
            )
        try:
            self.header = _parse_header(self._buf, self.path)
        except BaseException:
            self.close()
            raise

    @property
    def metadata(self) -> dict[str, Any]:
        return self.header.metadata

    def __iter__(self) -> Iterator[Frame]:
        buf = self._buf
        if isinstance(buf, mmap.mmap) and buf.closed:
            raise RecordingError(f"{self.path}: reader is closed")
        unpack_body = _BODY_HEAD.unpack_from
        scan = FRAMES.scan(buf, self.header.size, self.file_size)
        n = 0
        for span in scan:
            t_recv, topic_len = unpack_body(buf, span.start)
            topic_start = span.start + _FRAME_FIXED
            if topic_start + topic_len > span.end:
                # The CRC holds, so a writer put this here: still not a frame we can read.
                self._corrupt(
                    span.offset,
                    n,
                    f"frame declares body_len={span.end - span.start}, topic_len={topic_len}, "
                    "which no writer produces",
                )
                return
            topic_end = topic_start + topic_len
            yield Frame(t_recv, buf[topic_start:topic_end], buf[topic_end : span.end])
            n += 1
        end = scan.finished()
        if end.reason in ("length", "crc"):
            detail = "frame CRC mismatch" if end.reason == "crc" else end.detail
            self._corrupt(end.offset, n, detail)
            return
        if end.reason is None:
            self._finish("complete", n, end.offset, "")
            return
        report = self._finish("truncated", n, end.offset, end.detail)
        if not report.complete:
            warnings.warn(report.message(), RecordingWarning, stacklevel=2)

    def _corrupt(self, pos: int, n: int, detail: str) -> None:
        """End a read at a damaged frame: raise, or warn and report, per ``on_corrupt``."""
        report = self._finish("corrupt", n, pos, detail)
        if self.on_corrupt == "raise":
            raise RecordingCorrupt(f"{self.path}: byte {pos}, frame {n}: {detail}", pos, n)
        warnings.warn(report.message(), RecordingWarning, stacklevel=3)

    def _finish(
        self, status: Literal["complete", "truncated", "corrupt"], n: int, pos: int, detail: str
    ) -> RecordingReport:
        self.report = RecordingReport(self.path, status, n, pos, self.file_size, detail)
        return self.report

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class Recording:
    """A whole recording in memory.

    Attributes
    ----------
    header : RecordingHeader
    frames : list of Frame
        In file order (which is receive order for a live recording).
    report : RecordingReport
        How the read ended.
    """

    header: RecordingHeader
    frames: list[Frame]
    report: RecordingReport
    _t_recv: np.ndarray | None = field(default=None, repr=False)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.header.metadata

    @property
    def t_start(self) -> float:
        return self.header.t_start

    @property
    def t_recv(self) -> np.ndarray:
        """Receive times, shape (N,), float64."""
        if self._t_recv is None:
            self._t_recv = np.fromiter(
                (f.t_recv for f in self.frames), dtype=np.float64, count=len(self.frames)
            )
        return self._t_recv

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)


def iter_recording(
    path: str | os.PathLike[str], on_corrupt: Literal["raise", "stop"] = "raise"
) -> Iterator[Frame]:
    """Yield the frames of a recording one at a time, without holding them all.

    A file cut off mid-frame ends the iteration at the last whole frame with a
    :class:`RecordingWarning`; use :class:`RecordingReader` directly to get the
    :class:`RecordingReport` as an object.
    """
    with RecordingReader(path, on_corrupt=on_corrupt) as reader:
        yield from reader


def read_recording(
    path: str | os.PathLike[str], on_corrupt: Literal["raise", "stop"] = "raise"
) -> Recording:
    """Read a whole recording into memory.

    Parameters
    ----------
    path : str or Path
        Recording to read.
    on_corrupt : {"raise", "stop"}
        See :class:`RecordingReader`.

    Returns
    -------
    Recording
        Header, frames, and the :class:`RecordingReport` (check ``report.complete``).

    Raises
    ------
    RecordingError
        Not a recording, unsupported version, or (with ``on_corrupt="raise"``)
        :class:`RecordingCorrupt`.
    """
    with RecordingReader(path, on_corrupt=on_corrupt) as reader:
        frames = list(reader)
        report = reader.report
    if report is None:  # cannot happen: exhausting the iterator sets it
        raise RecordingError(f"{path}: read ended without a report")
    return Recording(reader.header, frames, report)
