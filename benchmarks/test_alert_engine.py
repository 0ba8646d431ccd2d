"""Alert engine against the tracker, side by side on the same scans (group ``alert engine``).

The service evaluates the alert rules after a batch (``AlertEngine.step`` on the
confirmed-track picture); the brief asks that this cost at most half of
``Tracker.process`` on the same scans. Both cases here run one steady scene (1e3
targets, one 3 km strip zone across it, the shipped rules) the way the service does,
tracker then engine on every scan, and time one of the two: the ``tracker`` case
times ``Tracker.process`` (the engine's step on the previous scan is in its untimed
setup), the ``engine`` case times ``AlertEngine.step`` (the tracker's work and the
snapshot are in its untimed setup). So each sees the other's effect on the caches, as
in the service. :mod:`benchmarks.run` prints the ratio of the medians.
"""

from __future__ import annotations

import pytest

from benchmarks.scenario import AlertedScene

ROUNDS = 100


@pytest.fixture(scope="module")
def alerted(size):
    return AlertedScene(size(1_000))


def test_engine_step(benchmark, alerted):
    benchmark.group = "alert engine"
    benchmark.extra_info.update(role="engine", n=1_000)

    def next_scan():
        return alerted.scan(), {}

    benchmark.pedantic(alerted.engine_step, setup=next_scan, rounds=ROUNDS, warmup_rounds=2)
    benchmark.extra_info["open_alerts"] = len(alerted.engine.open_alerts())


def test_tracker_process_same_scene(benchmark, alerted):
    benchmark.group = "alert engine"
    benchmark.extra_info.update(role="tracker", n=1_000)
    last: list = []

    def engine_then_next_scan():
        if last:  # the engine's step on the scan the tracker just processed
            batch, result = last.pop()
            tracker = alerted.tracker
            snap = tracker.confirmed(at=tracker.latest_time)
            alerted.engine_step(
                tracker.latest_time, snap, result.updated, batch.sensor_id, result.deleted
            )
        return (alerted.scene.scan(),), {}

    def process(batch):
        last.append((batch, alerted.tracker.process(batch)))

    benchmark.pedantic(process, setup=engine_then_next_scan, rounds=ROUNDS, warmup_rounds=2)
