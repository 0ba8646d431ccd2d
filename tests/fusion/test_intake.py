"""The raw-input record: rotated recordings of accepted batches, with keys and retention."""

from __future__ import annotations

import os
import time

from fusion.messages import encode_batch, unpack_map
from fusion.recordfile import RecordingWriter
from fusion.service.intake import IntakeRecorder, intake_files
from replay.recording import RecordingWriter as ReplayWriter
from replay.recording import read_recording
from tests.fusion.support import FakeClock, crossing_batches


def test_the_service_writes_the_recording_format_replay_reads():
    assert ReplayWriter is RecordingWriter  # one writer, re-exported by replay


def test_batches_rotate_into_readable_files_with_the_key_each_came_with(tmp_path):
    clock = FakeClock()
    clock.now = 1_700_000_000.0
    rec = IntakeRecorder(tmp_path, rotate_bytes=2000, rotate_seconds=3600, retention=0,
                         metadata={"scenario": {"name": "t"}}, wall=clock)
    batches = crossing_batches(20)
    for k, b in enumerate(batches):
        clock.now += 1.0
        rec.write(b.topic, encode_batch(b), b.sensor_id, "key-a" if k < 10 else "key-b")
    rec.close()
    files = intake_files(tmp_path)
    assert len(files) > 1  # rotated by size
    frames, keys = [], []
    for path in files:
        r = read_recording(path)
        assert r.report.complete and r.metadata["kind"] == "intake"
        assert r.metadata["scenario"] == {"name": "t"}
        for f in r.frames:
            if f.topic.startswith(b"auth."):
                keys.append(unpack_map(f.payload)["user_id"])
            else:
                frames.append(f.payload)
    assert frames == [encode_batch(b) for b in batches]  # byte for byte, in order
    assert keys[0] == "key-a" and "key-b" in keys  # named per file and on change
    assert rec.status()["frames"] == 20 and rec.status()["failed"] == 0


def test_files_past_their_retention_are_removed_and_the_current_one_kept(tmp_path):
    clock = FakeClock()
    clock.now = time.time()  # file times are the system's
    rec = IntakeRecorder(tmp_path, rotate_bytes=1 << 30, rotate_seconds=10, retention=100,
                         wall=clock)
    b = crossing_batches(1)[0]
    rec.write(b.topic, encode_batch(b), b.sensor_id)
    rec.flush()  # nothing left to write: closing it later leaves its time alone
    old = intake_files(tmp_path)[0]
    os.utime(old, (clock.now - 1000, clock.now - 1000))  # last written long ago
    clock.now += 20  # past rotate_seconds: a new file, and the old one expires
    rec.write(b.topic, encode_batch(b), b.sensor_id)
    rec.close()
    assert not old.exists() and len(intake_files(tmp_path)) == 1
