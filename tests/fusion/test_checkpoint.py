"""Checkpoints: atomic files without pickle, and the restart rule against the alert log."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fusion import DetectionBatch, Tracker
from fusion.alerting.engine import AlertEngine
from fusion.messages import unpack_map
from fusion.service import Pipeline, ServiceConfig, restore_pipeline
from fusion.service.alertlog import AlertLog, read_alert_log
from fusion.service.recovery import CheckpointError, load_checkpoint, save_checkpoint
from tests.fusion.support import FakeClock, crossing_batches, frames


def make(strip_zones, tmp_path, emitted):
    cfg = ServiceConfig(det_bind=("inproc://x",), reorder_window=0.0,
                        alert_log=str(tmp_path / "alerts.log"),
                        checkpoint=str(tmp_path / "state.npz"))
    log = AlertLog(cfg.alert_log)
    pipe = Pipeline(Tracker(), AlertEngine(strip_zones), cfg, alert_log=log,
                    emit=lambda t, p: (emitted.append(unpack_map(p))
                                       if t.startswith(b"alert.") else None),
                    clock=FakeClock())
    return pipe, log


def feed(pipe, batches):
    for b in batches:
        pipe.clock.now = b.t
        assert pipe.receive(frames(b))
        pipe.release()


def test_round_trip_is_exact_and_holds_no_pickle(tmp_path):
    state = {"a": np.arange(5, dtype=np.int64), "nested": [{"x": np.eye(2)}, 3, "s", None],
             "f": np.float64(2.5), "b": b"\x00\x01", "inf": float("-inf")}
    save_checkpoint(tmp_path / "c.npz", state)
    back = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(back["a"], state["a"])
    np.testing.assert_array_equal(back["nested"][0]["x"], np.eye(2))
    assert back["nested"][1:] == [3, "s", None] and back["f"] == 2.5 and back["b"] == b"\x00\x01"
    assert back["inf"] == float("-inf")
    assert not list(tmp_path.glob(".c.npz.*"))  # no temp file left behind
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:  # loads without pickle
        assert "skeleton" in npz.files


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"a": np.arange(1000)})
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"PK" + bytes(100),
                      "empty": b""}[damage])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_restored_pipeline_continues_exactly_like_the_original(strip_zones, tmp_path):
    batches = crossing_batches(130)
    a_events, b_events = [], []
    a, log = make(strip_zones, tmp_path, a_events)
    feed(a, batches[:60])
    save_checkpoint(a.config.checkpoint, a.state_dict())
    log.close()
    a.alert_log = None  # the original carries on without its log (one writer per log)
    b, log_b = make(strip_zones, tmp_path, b_events)
    restore_pipeline(b, a.config.checkpoint, a.config.alert_log)
    for pipe in (a, b):
        feed(pipe, batches[60:])
    strip = lambda evs: [{k: v for k, v in e.items() if k != "run"} for e in evs]  # noqa: E731
    assert strip(b_events) == strip(a_events[len(a_events) - len(b_events):])
    assert b.status()["gaps"] == {} and b.last_seq == a.last_seq
    log_b.close()


def test_alerts_after_the_checkpoint_are_neither_lost_nor_raised_again(strip_zones, tmp_path):
    batches = crossing_batches(140)
    seen = []
    a, log = make(strip_zones, tmp_path, seen)
    feed(a, batches[:30])  # predicted incursion open, not yet the incursion
    save_checkpoint(a.config.checkpoint, a.state_dict())
    feed(a, batches[30:70])  # incursion opens after the checkpoint
    open_before = {e["alert_id"] for e in a.engine.open_alerts()}
    assert any(":incursion:" in x for x in open_before)
    log.close()  # SIGKILL: what was logged stays, the state after the checkpoint is gone
    again = []
    b, log_b = make(strip_zones, tmp_path, again)
    restored = restore_pipeline(b, a.config.checkpoint, a.config.alert_log)
    assert {e["alert_id"] for e in b.engine.open_alerts()} == open_before
    assert restored["later_events"] > 0 and restored["open_alerts"] == len(open_before)
    feed(b, batches[72:])  # two batches lost in the crash
    log_b.close()
    events, report = read_alert_log(a.config.alert_log)
    assert report.ok
    opens = Counter(e["alert_id"] for e in events if e["event"] == "open")
    assert max(opens.values()) == 1, opens  # nothing raised twice
    incursion = next(x for x in open_before if ":incursion:" in x)
    closes = [e for e in again if e["alert_id"] == incursion and e["event"] == "close"]
    assert len(closes) == 1  # the restored alert carried on and closed normally
    assert not any(e["event"] == "open" and e["kind"] == "incursion" for e in again)
    # The batches the crash cost are counted, as downtime rather than transport loss.
    assert b.status()["missed_while_down"] == {"radar-1": 42} and b.status()["gaps"] == {}
    assert b.status()["restarts"] == 1


def test_track_born_after_the_checkpoint_comes_back_with_its_alert(strip_zones, tmp_path):
    seen = []
    a, log = make(strip_zones, tmp_path, seen)
    feed(a, crossing_batches(5, sensor="radar-9", start=(3000.0, 3000.0), velocity=(0, 0)))
    save_checkpoint(a.config.checkpoint, a.state_dict())
    late = [DetectionBatch.build(b.sensor_id, b.sensor_kind, b.seq, b.t + 5, b.z, b.R)
            for b in crossing_batches(70)]
    feed(a, late)
    open_before = {e["alert_id"]: e["track_id"] for e in a.engine.open_alerts()}
    assert open_before
    log.close()
    b, log_b = make(strip_zones, tmp_path, [])
    restored = restore_pipeline(b, a.config.checkpoint, a.config.alert_log)
    assert set(restored["tracks_restored"]) == set(open_before.values())
    assert set(b.tracker.confirmed().ids.tolist()) >= set(open_before.values())
    assert b.tracker.tracks.next_id >= a.tracker.tracks.next_id
    log_b.close()


def test_corrupt_log_tail_is_set_aside_and_reported_in_status(strip_zones, tmp_path):
    a, log = make(strip_zones, tmp_path, [])
    feed(a, crossing_batches(70))
    log.close()
    path = tmp_path / "alerts.log"
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02\x03\x04torn")
    b, log_b = make(strip_zones, tmp_path, [])
    restored = restore_pipeline(b, "", str(path))  # no checkpoint: from the log alone
    assert "log_damaged" in restored and b.status()["restored"]["log_damaged"]
    assert restored["open_alerts"] == len(a.engine.open_alerts()) > 0
    log_b.close()
