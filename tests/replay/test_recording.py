"""Recording file: round trip, crash truncation, corruption and header errors."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest

from replay.recording import (
    FORMAT_VERSION,
    FRAMES,
    MAGIC,
    Frame,
    RecordingCorrupt,
    RecordingError,
    RecordingReader,
    RecordingWarning,
    RecordingWriter,
    iter_recording,
    read_recording,
)


def _frames(n: int, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        topic = f"det.drone.uav-{i % 3}".encode()
        payload = rng.bytes(int(rng.integers(0, 300)))
        out.append(Frame(1000.0 + 0.1 * i, topic, payload))
    return out


def _write(path, frames, **kw):
    with RecordingWriter(path, **kw) as rec:
        for f in frames:
            rec.write(*f)
    return rec


def test_round_trip_keeps_bytes_times_and_metadata(tmp_path):
    path = tmp_path / "run.bzrec"
    frames = _frames(500)
    meta = {"scenario": "crossing", "seed": 7, "zones": ["zone-a", "zone-b"]}
    rec = _write(path, frames, metadata=meta, t_start=1234.5)
    assert rec.frames == 500
    assert rec.bytes_written == path.stat().st_size

    recording = read_recording(path)
    assert recording.frames == frames
    assert recording.metadata == meta
    assert recording.t_start == 1234.5
    assert recording.header.version == FORMAT_VERSION
    assert recording.report.complete and recording.report.frames == 500
    assert recording.report.end_offset == path.stat().st_size
    np.testing.assert_array_equal(recording.t_recv, [f.t_recv for f in frames])


def test_empty_recording_and_no_metadata(tmp_path):
    path = tmp_path / "empty.bzrec"
    _write(path, [], t_start=0.0)
    recording = read_recording(path)
    assert len(recording) == 0 and recording.metadata == {} and recording.report.complete


def test_header_and_frame_bytes_follow_the_spec(tmp_path):
    # Golden layout: pins the documented byte format.
    path = tmp_path / "golden.bzrec"
    _write(path, [Frame(2.5, b"ab", b"xyz")], t_start=1.0)
    data = path.read_bytes()
    head = MAGIC + struct.pack("<HHdI", 1, 0, 1.0, 0)
    assert data[:24] == head
    assert data[24:28] == struct.pack("<I", zlib.crc32(head))
    frame = struct.pack("<IdH", 8 + 2 + 2 + 3, 2.5, 2) + b"ab" + b"xyz"
    assert data[28:] == frame + struct.pack("<I", zlib.crc32(frame))


def test_iter_recording_streams_frames(tmp_path):
    path = tmp_path / "run.bzrec"
    frames = _frames(50)
    _write(path, frames)
    assert list(iter_recording(path)) == frames


@pytest.mark.parametrize("cut", [1, 5, 13, 40])
def test_truncated_mid_frame_reads_up_to_the_cut_and_says_where(tmp_path, cut):
    path = tmp_path / "crash.bzrec"
    frames = _frames(20)
    _write(path, frames)
    full = path.read_bytes()
    # Offset where frame 15 starts: header plus frames 0..14.
    reader = RecordingReader(path)
    start_15 = reader.header.size + sum(
        4 + 8 + 2 + len(f.topic) + len(f.payload) + 4 for f in frames[:15]
    )
    reader.close()
    cut_at = min(
        start_15 + cut, start_15 + 4 + 8 + 2 + len(frames[15].topic) + len(frames[15].payload) + 3
    )
    path.write_bytes(full[:cut_at])

    with pytest.warns(RecordingWarning, match="truncated after 15 whole frames"):
        recording = read_recording(path)
    assert recording.frames == frames[:15]
    report = recording.report
    assert report.status == "truncated" and not report.complete
    assert report.frames == 15
    assert report.end_offset == start_15
    assert report.bytes_ignored == cut_at - start_15
    assert f"at byte {start_15}" in report.message()


def test_zero_filled_tail_counts_as_truncation(tmp_path):
    path = tmp_path / "zeros.bzrec"
    frames = _frames(5)
    _write(path, frames)
    with open(path, "ab") as f:
        f.write(b"\0" * 100)
    with pytest.warns(RecordingWarning):
        recording = read_recording(path)
    assert recording.frames == frames and recording.report.status == "truncated"


def test_corrupt_frame_is_detected(tmp_path):
    path = tmp_path / "flip.bzrec"
    frames = _frames(10)
    _write(path, frames)
    data = bytearray(path.read_bytes())
    with RecordingReader(path) as reader:
        offsets = [reader.header.size]
        for f in frames:
            offsets.append(offsets[-1] + 4 + 8 + 2 + len(f.topic) + len(f.payload) + 4)
    # Flip one bit in frame 6's topic: only the CRC can notice.
    data[offsets[6] + 14] ^= 0x04
    path.write_bytes(bytes(data))

    with pytest.raises(RecordingCorrupt, match="CRC") as info:
        read_recording(path)
    assert info.value.offset == offsets[6] and info.value.frame_index == 6

    with pytest.warns(RecordingWarning, match="corrupt"):
        recording = read_recording(path, on_corrupt="stop")
    assert recording.frames == frames[:6]
    assert recording.report.status == "corrupt" and recording.report.end_offset == offsets[6]


def test_impossible_frame_length_is_corruption(tmp_path):
    path = tmp_path / "len.bzrec"
    frames = _frames(3)
    _write(path, frames)
    data = bytearray(path.read_bytes())
    with RecordingReader(path) as reader:
        first = reader.header.size
    data[first : first + 4] = struct.pack("<I", 3)  # shorter than t_recv + topic_len
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingCorrupt, match="body_len=3"):
        read_recording(path)


def test_wrong_magic_and_version_are_clear_errors(tmp_path):
    path = tmp_path / "x.bzrec"
    path.write_bytes(b"hello world, not a recording at all")
    with pytest.raises(RecordingError, match="not a bufferzone recording"):
        read_recording(path)
    path.write_bytes(b"")
    with pytest.raises(RecordingError, match="not a bufferzone recording"):
        read_recording(path)

    _write(tmp_path / "ok.bzrec", _frames(2))
    data = bytearray((tmp_path / "ok.bzrec").read_bytes())
    data[8:10] = struct.pack("<H", 99)
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="version 99 is not supported"):
        read_recording(path)

    data[8:10] = struct.pack("<H", FORMAT_VERSION)
    data[14] ^= 0xFF  # t_start byte: header CRC must catch it
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="header CRC"):
        read_recording(path)


def test_writer_refuses_bad_input_and_never_clobbers(tmp_path):
    path = tmp_path / "run.bzrec"
    with RecordingWriter(path) as rec:
        with pytest.raises(RecordingError, match="not finite"):
            rec.write(float("nan"), b"t", b"")
        rec.write(1.0, "det.drone.uav-1", memoryview(b"abc"))  # str topic, buffer payload
    with pytest.raises(RecordingError, match="after close"):
        rec.write(2.0, b"t", b"")
    with pytest.raises(FileExistsError):
        RecordingWriter(path)
    with pytest.raises(RecordingError, match="metadata"):
        RecordingWriter(tmp_path / "m.bzrec", metadata={1: "int keys are not allowed"})
    assert read_recording(path).frames == [Frame(1.0, b"det.drone.uav-1", b"abc")]


def test_flushed_frames_survive_a_writer_that_never_closes(tmp_path):
    # A crash: the writer is abandoned without close(); flush_interval=0 means every
    # frame reached the OS.
    path = tmp_path / "live.bzrec"
    rec = RecordingWriter(path, flush_interval=0.0)
    frames = _frames(4)
    for f in frames:
        rec.write(*f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete read must not warn
        assert read_recording(path).frames == frames
    rec.close()


def test_a_frame_whose_topic_overruns_its_body_is_corruption_even_with_a_good_crc(tmp_path):
    # Framing (length, CRC) is checked by fusion.framing; the topic length inside the
    # body is the recording's own to check.
    path = tmp_path / "topic.bzrec"
    frames = _frames(2)
    _write(path, frames)
    bad = FRAMES.encode(struct.pack("<dH", 5.0, 50), b"det.x")
    with open(path, "ab") as f:
        f.write(bad)
    with pytest.raises(RecordingCorrupt, match="topic_len=50") as info:
        read_recording(path)
    assert info.value.frame_index == 2
    with pytest.warns(RecordingWarning, match="corrupt"):
        recording = read_recording(path, on_corrupt="stop")
    assert recording.frames == frames and recording.report.status == "corrupt"
