"""The durable alert log: round trip, torn tails, flipped bytes, rebuilding open alerts."""

from __future__ import annotations

import logging
import struct
import zlib

import pytest

from fusion.messages import pack_map
from fusion.service.alertlog import (
    MAGIC,
    AlertLog,
    AlertLogError,
    open_alerts_from_events,
    read_alert_log,
    rebuild_open_alerts,
)


def event(alert_id, ev, t, **extra):
    return {
        "alert_id": alert_id,
        "kind": alert_id.split(":")[1],
        "event": ev,
        "severity": "high",
        "zone": "zone-a",
        "track_id": int(alert_id.split(":")[2]),
        "t": t,
        "position": {"east": 1.5, "north": -2.25, "lon": 33.0, "lat": 35.0},
        "velocity": {"east": 0.1, "north": 0.2},
        "speed": 0.2236,
        "p_inside": 0.97,
        "time_to_breach": None,
        "side": "north",
        "cls": "vehicle",
        "conf": 0.8,
        "evidence": ["radar-2", "uav-1"],
        "opened_at": 1.0,
        **extra,
    }


EVENTS = [
    event("zone-a:incursion:1:0", "open", 1.0),
    event("zone-a:incursion:2:0", "open", 2.0),
    event("zone-a:incursion:1:0", "update", 3.0),
    event("zone-a:incursion:2:0", "close", 4.0),
    event("zone-a:exit:2:0", "open", 4.0),
    event("zone-a:exit:2:0", "close", 4.0),
]


def write(path, events, **kwargs):
    with AlertLog(path, **kwargs) as log:
        offsets = [log.append(e) for e in events]
    return offsets


def test_round_trip(tmp_path):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS[:3], fsync=True)
    with AlertLog(path) as log:  # reopen and append more
        assert log.recovery.ok and log.recovery.records == 3
        offsets += log.append_many(EVENTS[3:])
    events, report = read_alert_log(path)
    assert events == EVENTS
    assert report.ok and report.records == 6 and report.valid_bytes == report.file_bytes
    assert offsets[0] == len(MAGIC) and offsets == sorted(offsets)


def test_rebuild_open_alerts(tmp_path):
    path = tmp_path / "alerts.log"
    write(path, EVENTS)
    open_, report = rebuild_open_alerts(path)
    assert report.ok
    assert [(e["alert_id"], e["event"], e["t"]) for e in open_] == [
        ("zone-a:incursion:1:0", "update", 3.0)
    ]
    assert open_alerts_from_events([]) == []


@pytest.mark.parametrize("cut", [1, 5, 8, 20])
def test_truncated_tail_is_reported_and_cut(tmp_path, cut, caplog):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    events, report = read_alert_log(path)
    assert events == EVENTS[:-1]
    assert report.error == "truncated" and report.valid_bytes == offsets[-1]
    assert str(offsets[-1]) in report.detail
    with caplog.at_level(logging.WARNING, logger="fusion.service.alertlog"), AlertLog(path) as log:
        assert log.recovery.truncated and log.recovery.valid_bytes == offsets[-1]
        log.append(EVENTS[-1])
    assert "truncating" in caplog.text
    events, report = read_alert_log(path)
    assert events == EVENTS and report.ok


def test_flipped_byte_is_detected_and_cut(tmp_path):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS)
    with open(path, "r+b") as f:
        f.seek(offsets[3] + 8 + 10)  # inside the fourth record's payload
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))
    events, report = read_alert_log(path)
    assert events == EVENTS[:3]
    assert report.error == "crc" and report.valid_bytes == offsets[3]
    assert f"offset {offsets[3]}" in report.detail
    with AlertLog(path) as log:
        assert log.recovery.truncated and log.recovery.error == "crc"
    assert path.stat().st_size == offsets[3]
    assert read_alert_log(path)[1].ok


def test_impossible_length_is_corruption_not_an_allocation(tmp_path):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS[:2])
    with open(path, "r+b") as f:
        f.seek(offsets[1])
        f.write(b"\xff\xff\xff\x7f")
    events, report = read_alert_log(path)
    assert events == EVENTS[:1] and report.error == "length"


def test_not_an_alert_log_is_never_touched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not an alert log\n")
    with pytest.raises(AlertLogError, match="not a bufferzone alert log"):
        AlertLog(path)
    with pytest.raises(AlertLogError):
        read_alert_log(path)
    assert path.read_bytes() == b"hello, this is not an alert log\n"


def test_torn_header_of_a_new_file_is_repaired(tmp_path):
    path = tmp_path / "alerts.log"
    path.write_bytes(MAGIC[:3])
    with AlertLog(path) as log:
        assert log.recovery.truncated
        log.append(EVENTS[0])
    assert read_alert_log(path)[0] == EVENTS[:1]


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "alerts.log"
    with AlertLog(path):
        with pytest.raises(AlertLogError, match="locked"):
            AlertLog(path)


def test_append_after_close_fails(tmp_path):
    log = AlertLog(tmp_path / "alerts.log")
    log.close()
    log.close()
    with pytest.raises(AlertLogError, match="closed"):
        log.append(EVENTS[0])


def test_bytes_follow_the_documented_layout(tmp_path):
    # Golden layout: the framing moved to fusion.framing, the file format did not.
    path = tmp_path / "alerts.log"
    ev = {"alert_id": "z:incursion:1:0", "event": "open"}
    write(path, [ev])
    data = path.read_bytes()
    payload = pack_map(ev)
    assert data == MAGIC + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def test_a_zero_filled_tail_is_cut_back_to_the_last_record(tmp_path):
    # Some file systems leave zeros where a crash cut the last write short.
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS[:2])
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\0" * 64)
    events, report = read_alert_log(path)
    assert events == EVENTS[:2] and not report.ok and report.valid_bytes == size
    with AlertLog(path) as log:
        assert log.recovery.truncated and log.recovery.records == 2
    assert path.stat().st_size == size and offsets[-1] < size
