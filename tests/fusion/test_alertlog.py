"""The durable alert log: round trip, torn tails, flipped bytes, quarantine, open alerts.

Nothing is ever cut: damage is copied to ``<log>.quarantine`` and stepped over.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import zlib

import numpy as np
import pytest

from fusion.framing import SYNC_MARKER
from fusion.messages import pack_map
from fusion.service.alertlog import (
    MAGIC,
    AlertLog,
    AlertLogError,
    open_alerts_from_events,
    read_alert_log,
    rebuild_open_alerts,
)
from fusion.service.logfile import HEADER_SIZE
from fusion.service.quarantine import quarantine_path, read_quarantine
from tests.fusion.conftest import EVENTS, long_history


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
    assert report.chained and report.head["seq"] == 5
    assert offsets[0] == HEADER_SIZE and offsets == sorted(offsets)


def test_rebuild_open_alerts(tmp_path):
    path = tmp_path / "alerts.log"
    write(path, EVENTS)
    open_, report = rebuild_open_alerts(path)
    assert report.ok
    assert [(e["alert_id"], e["event"], e["t"]) for e in open_] == [
        ("zone-a:incursion:1:0", "update", 3.0)
    ]
    assert open_alerts_from_events([]) == []


def quarantined_bytes(path):
    """The bytes of every region in the quarantine file, by offset (parts joined)."""
    regions = {}
    for e in read_quarantine(quarantine_path(path)):
        regions.setdefault(e["offset"], []).append((e["part"], e["bytes"]))
    return {off: b"".join(b for _, b in sorted(parts)) for off, parts in regions.items()}


@pytest.mark.parametrize("cut", [1, 5, 8, 20])
def test_a_torn_tail_is_quarantined_never_cut(tmp_path, cut, caplog):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    torn = path.read_bytes()
    events, report = read_alert_log(path)
    assert events == EVENTS[:-1]
    assert report.error == "truncated" and report.valid_bytes == offsets[-1]
    assert str(offsets[-1]) in report.detail
    with caplog.at_level(logging.ERROR, logger="fusion.service.alertlog"), AlertLog(path) as log:
        assert not log.recovery.truncated and log.recovery.quarantined[0]["offset"] == offsets[-1]
        log.append(EVENTS[-1])
    assert "nothing cut" in caplog.text
    assert path.read_bytes().startswith(torn)  # every byte still where it was
    assert quarantined_bytes(path) == {offsets[-1]: torn[offsets[-1] :]}
    events, report = read_alert_log(path)
    # The torn record was never published (append before publish); the writer's note
    # acknowledges the torn bytes, and the chain runs on across them.
    assert events == EVENTS and report.ok, report.detail


def test_a_flipped_byte_loses_one_record_and_names_the_alerts_it_affects(tmp_path):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS)
    with open(path, "r+b") as f:
        f.seek(offsets[3] + 16 + 60)  # inside the fourth record's payload
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))
    damaged = path.read_bytes()
    events, report = read_alert_log(path)
    assert events == EVENTS[:3] + EVENTS[4:]  # reading resumes at the next record
    assert report.error == "crc" and report.valid_bytes == offsets[3]
    assert "zone-a:incursion:2:0" in report.affected_alerts
    with AlertLog(path) as log:
        assert not log.recovery.truncated and log.recovery.error == "crc"
    assert path.read_bytes().startswith(damaged)
    assert quarantined_bytes(path) == {offsets[3]: damaged[offsets[3] : offsets[4]]}
    events, report = read_alert_log(path)
    assert len(events) == 5 and report.error == "damaged"  # the lost record stays reported


def test_impossible_length_is_corruption_not_an_allocation(tmp_path):
    path = tmp_path / "alerts.log"
    offsets = write(path, EVENTS[:2])
    with open(path, "r+b") as f:
        f.seek(offsets[1] + len(SYNC_MARKER))
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


def test_torn_header_of_a_new_file_is_replaced_and_kept(tmp_path):
    path = tmp_path / "alerts.log"
    path.write_bytes(MAGIC[:3])
    with AlertLog(path) as log:
        assert log.recovery.error == "truncated"
        log.append(EVENTS[0])
    assert read_alert_log(path)[0] == EVENTS[:1]
    assert quarantined_bytes(path) == {0: MAGIC[:3]}


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
    path = tmp_path / "alerts.log"
    ev = {"alert_id": "z:incursion:1:0", "event": "open"}
    write(path, [ev])
    data = path.read_bytes()
    header = data[:16]
    assert header[:8] == MAGIC and data[16:20] == struct.pack("<I", zlib.crc32(header))
    payload = pack_map(ev)
    body = struct.pack("<BQ", 0, 0) + header[8:] + hashlib.sha256(header).digest() + payload
    record = SYNC_MARKER + struct.pack("<II", len(body), zlib.crc32(body)) + body
    assert data == data[:20] + record


def test_a_zero_filled_tail_is_quarantined_and_stepped_over(tmp_path):
    # Some file systems leave zeros where a crash cut the last write short.
    path = tmp_path / "alerts.log"
    write(path, EVENTS[:2])
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\0" * 64)
    events, report = read_alert_log(path)
    assert events == EVENTS[:2] and report.error == "truncated" and report.valid_bytes == size
    with AlertLog(path) as log:
        assert log.recovery.records == 2 and log.recovery.quarantined
        log.append(EVENTS[2])
    assert read_alert_log(path)[0] == EVENTS[:3]
    assert quarantined_bytes(path) == {size: b"\0" * 64}


def test_a_flipped_byte_mid_log_keeps_every_other_record_and_the_open_set(tmp_path):
    # The probe: one flipped byte in the middle of a long log.
    events = long_history()
    path = tmp_path / "alerts.log"
    offsets = write(path, events)
    truth = {a["alert_id"] for a in open_alerts_from_events(events)}
    k = len(events) // 2
    data = bytearray(path.read_bytes())
    data[offsets[k] + 40] ^= 0x01
    path.write_bytes(bytes(data))
    with AlertLog(path) as log:
        report = log.recovery
    open_, again = rebuild_open_alerts(path)
    assert again.records == len(events) - 1
    affected = set(report.affected_alerts)
    assert events[k]["alert_id"] in affected
    rebuilt = {a["alert_id"] for a in open_}
    assert rebuilt - affected == truth - affected  # every unaffected alert is right
    assert path.stat().st_size + quarantine_path(path).stat().st_size >= len(data)


@pytest.mark.parametrize("seed", range(12))
def test_quarantine_keeps_every_byte_of_random_damage(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "alerts.log"
    offsets = write(path, long_history(40, seed))
    data = bytearray(path.read_bytes())
    for _ in range(int(rng.integers(1, 4))):  # flips, overwritten runs, zeroed runs
        at = int(rng.integers(HEADER_SIZE, len(data)))
        run = int(rng.integers(1, 300))
        how = int(rng.integers(3))
        chunk = (bytes(rng.integers(0, 256, run, dtype=np.uint8)) if how == 0
                 else b"\0" * run if how == 1 else bytes([data[at] ^ 0x20]))
        data[at : at + len(chunk)] = chunk[: len(data) - at]
    before = bytes(data)
    path.write_bytes(before)
    with AlertLog(path) as log:
        regions = log.recovery.quarantined
        log.append(EVENTS[0])
    after = path.read_bytes()
    assert after.startswith(before)  # never cut, never rewritten
    kept = quarantined_bytes(path)
    for r in regions:
        assert kept[r["offset"]] == before[r["offset"] : r["offset"] + r["length"]]
    qsize = quarantine_path(path).stat().st_size if regions else 0
    assert len(after) + qsize >= len(before)
    assert offsets  # the log had records
    with AlertLog(path):  # a second open quarantines nothing twice
        pass
    assert quarantined_bytes(path) == kept
