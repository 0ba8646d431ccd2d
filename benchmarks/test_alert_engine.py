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

Each case also times the other half in its setup with ``perf_counter`` (the median
goes to ``extra_info["paired_median"]``): those pairs alternate scan by scan, so a
machine whose load changes between the two cases (other work, a shared CPU) moves both
halves of a pair alike, and :mod:`benchmarks.run` prints their ratios beside the one
from the two cases' medians.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks.scenario import AlertedScene

ROUNDS = 100


def _median(seconds: list[float]) -> float | None:
    """Median past the two warm-up rounds (None where the case ran once: benchmarks off)."""
    timed = seconds[2:]
    return float(np.median(timed)) if timed else None


@pytest.fixture(scope="module")
def alerted(size):
    return AlertedScene(size(1_000))


def test_engine_step(benchmark, alerted):
    benchmark.group = "alert engine"
    benchmark.extra_info.update(role="engine", n=1_000)
    tracker_s: list[float] = []

    def next_scan():
        args = alerted.scan()
        tracker_s.append(alerted.last_process_s)
        return args, {}

    benchmark.pedantic(alerted.engine_step, setup=next_scan, rounds=ROUNDS, warmup_rounds=2)
    benchmark.extra_info["open_alerts"] = len(alerted.engine.open_alerts())
    # Tracker.process on the scans this case's rounds stepped the engine on.
    benchmark.extra_info["paired_median"] = _median(tracker_s)


def test_tracker_process_same_scene(benchmark, alerted):
    benchmark.group = "alert engine"
    benchmark.extra_info.update(role="tracker", n=1_000)
    last: list = []
    engine_s: list[float] = []

    def engine_then_next_scan():
        if last:  # the engine's step on the scan the tracker just processed
            batch, result = last.pop()
            tracker = alerted.tracker
            snap = tracker.confirmed(at=tracker.latest_time)
            start = time.perf_counter()
            alerted.engine_step(
                tracker.latest_time, snap, result.updated, batch.sensor_id, result.deleted
            )
            engine_s.append(time.perf_counter() - start)
        return (alerted.scene.scan(),), {}

    def process(batch):
        last.append((batch, alerted.tracker.process(batch)))

    benchmark.pedantic(process, setup=engine_then_next_scan, rounds=ROUNDS, warmup_rounds=2)
    # AlertEngine.step on the scans this case's rounds timed the tracker on.
    benchmark.extra_info["paired_median"] = _median(engine_s)
