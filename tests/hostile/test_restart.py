"""Restarts are reported as restarts: counters carry over, downtime is not transport loss,
and what a kill left half-written is cleaned up (never what was a checkpoint)."""

from __future__ import annotations

import numpy as np

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.alerting import AlertEngine
from fusion.service import Pipeline, ServiceConfig, restore_pipeline
from fusion.service.recovery import save_checkpoint


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def feed(pipe: Pipeline, clock: Clock, seqs, sensor: str = "radar-1") -> None:
    for seq in seqs:
        clock.now = float(seq)
        b = DetectionBatch.build(sensor, "radar", seq, float(seq), [[0.0, -3000.0]],
                                 np.eye(2) * 100.0)
        assert pipe.receive([b.topic, encode_batch(b)])
        pipe.release()


def make(strip_zones, path, wall) -> tuple[Pipeline, Clock]:
    clock = Clock()
    config = ServiceConfig(det_bind=("inproc://x",), reorder_window=0.0, checkpoint=str(path))
    return Pipeline(Tracker(), AlertEngine(strip_zones), config, clock=clock, wall=wall), clock


def test_a_restart_is_counted_with_its_downtime_not_as_gaps(strip_zones, tmp_path):
    path = tmp_path / "state.npz"
    walls = iter([1000.0, 1100.0, 1130.0])
    a, clock_a = make(strip_zones, path, lambda: 1000.0)
    feed(a, clock_a, range(0, 10))
    feed(a, clock_a, range(12, 20))  # two lost in transport
    save_checkpoint(path, a.state_dict())
    b, clock_b = make(strip_zones, path, lambda: next(walls, 1130.0))
    restore_pipeline(b, path)
    feed(b, clock_b, range(50, 60))  # 30 batches sent while the service was down
    status = b.status()
    assert status["gaps"] == {"radar-1": 2}
    assert status["missed_while_down"] == {"radar-1": 30}
    assert status["restarts"] == 1 and status["downtime_at_most_s"] >= 0
    assert status["batches"] == a.status()["batches"] + 10  # counters carried over


def test_stale_checkpoint_temporaries_are_removed_and_reported(strip_zones, tmp_path):
    path = tmp_path / "state.npz"
    a, clock = make(strip_zones, path, lambda: 0.0)
    feed(a, clock, range(5))
    save_checkpoint(path, a.state_dict())
    stale = tmp_path / ".state.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".other.npz.abc123.tmp"
    unrelated.write_bytes(b"not ours")
    b, _ = make(strip_zones, path, lambda: 0.0)
    restored = restore_pipeline(b, path)
    assert restored["stale_temporaries_removed"] == [stale.name]
    assert not stale.exists() and unrelated.exists() and path.exists()
