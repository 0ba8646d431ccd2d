"""Alert engine against the tracker, side by side on the same scans (group ``alert engine``).

The service evaluates the alert rules after a batch (``AlertEngine.step`` on the
confirmed-track picture); the brief asks that this cost at most half of
``Tracker.process`` on the same scans. Both cases here run on one steady scene (1e3
targets, one 3 km strip zone across it, the shipped rules): the ``tracker`` case times
``Tracker.process`` per scan, the ``engine`` case times ``AlertEngine.step`` per scan
(its tracker work and snapshot in the untimed setup). :mod:`benchmarks.run` prints the
ratio of the medians.
"""

from __future__ import annotations

import pytest

from benchmarks.scenario import AlertedScene

ROUNDS = 60


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

    def next_scan():
        return (alerted.scene.scan(),), {}

    benchmark.pedantic(alerted.tracker.process, setup=next_scan, rounds=ROUNDS, warmup_rounds=2)
