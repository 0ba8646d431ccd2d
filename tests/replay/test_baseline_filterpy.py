"""The filterpy-loop reference tracker, lightly: it confirms targets and not clutter."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.messages import DetectionBatch
from replay.baseline import FilterpyLoopTracker

R_STD = 5.0


def _batch(seq: int, t: float, z, coverage=None) -> DetectionBatch:
    z = np.asarray(z, dtype=np.float64).reshape(-1, 2)
    return DetectionBatch.build(
        "radar-1", "radar", seq, t, z, np.eye(2) * R_STD**2, coverage=coverage
    )


def _two_targets(t: float) -> np.ndarray:
    # Two targets 2 km apart, walking at 1.5 m/s and driving at 10 m/s.
    return np.array([[0.0 + 1.5 * t, 0.0], [2000.0, 500.0 - 10.0 * t]])


def test_two_separated_targets_give_two_confirmed_tracks():
    rng = np.random.default_rng(1)
    tracker = FilterpyLoopTracker(accel_std=1.0)
    for k in range(4):
        t = float(k)
        tracker.process(_batch(k, t, _two_targets(t) + rng.normal(0, R_STD, (2, 2))))
    ids, x, P = tracker.confirmed()
    assert ids.shape == (2,) and len(set(ids.tolist())) == 2
    assert x.shape == (2, 4) and P.shape == (2, 4, 4)
    order = np.argsort(x[:, 0])
    np.testing.assert_allclose(x[order, :2], _two_targets(3.0), atol=4 * R_STD)
    # Velocity has been learned from the scans (the driving target heads south).
    assert x[order[1], 3] < -3.0
    # Covariances stay symmetric positive-definite.
    np.testing.assert_allclose(P, np.swapaxes(P, 1, 2))
    assert (np.linalg.eigvalsh(P) > 0).all()
    # Asking for a later time predicts copies, not the tracks.
    _, x_later, _ = tracker.confirmed(t=5.0)
    np.testing.assert_allclose(x_later[:, :2], x[:, :2] + 2.0 * x[:, 2:])
    np.testing.assert_array_equal(tracker.confirmed()[1], x)


def test_clutter_only_confirms_nothing():
    # Sparse clutter (10 per scan over 20 km x 20 km): a new track's gate (about 65 m
    # radius after one second with 20 m/s velocity uncertainty) catches a clutter point
    # with probability ~3e-3 per scan, so a chance confirmation is rare, not impossible
    # (denser clutter would confirm some: that is the filter working, not a bug).
    rng = np.random.default_rng(2)
    tracker = FilterpyLoopTracker(accel_std=1.0)
    for k in range(6):
        tracker.process(_batch(k, float(k), rng.uniform(-10_000, 10_000, (10, 2))))
        assert tracker.confirmed()[0].size == 0
    # Tentative tracks that can no longer reach 2 of 3 are gone: only the last two scans'.
    assert len(tracker) <= 20


def test_track_outside_coverage_is_not_charged_a_miss():
    tracker = FilterpyLoopTracker(accel_std=1.0, max_misses=2, max_coast_time=100.0)
    target = np.array([[100.0, 100.0]])
    for k in range(3):
        tracker.process(_batch(k, float(k), target))
    ids, x_before, _ = tracker.confirmed()
    assert ids.size == 1
    # A sensor looking elsewhere, seeing nothing, five times: no misses, no prediction.
    elsewhere = np.array([[1000.0, 1000.0], [2000.0, 1000.0], [2000.0, 2000.0], [1000.0, 2000.0]])
    for k in range(3, 8):
        tracker.process(_batch(k, float(k), np.empty((0, 2)), coverage=elsewhere))
    ids_after, x_after, _ = tracker.confirmed()
    np.testing.assert_array_equal(ids_after, ids)
    np.testing.assert_array_equal(x_after, x_before)
    # Inside coverage with nothing detected, it is missed and deleted.
    for k in range(8, 10):
        tracker.process(_batch(k, float(k), np.empty((0, 2))))
    assert tracker.confirmed()[0].size == 0


def test_out_of_order_batch_is_refused():
    tracker = FilterpyLoopTracker()
    tracker.process(_batch(0, 5.0, np.zeros((1, 2))))
    with pytest.raises(ValueError, match="older"):
        tracker.process(_batch(1, 4.0, np.zeros((1, 2))))
