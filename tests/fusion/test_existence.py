"""Track existence: the likelihood-ratio score, its SPRT thresholds, and the detection model."""

from __future__ import annotations

import numpy as np
import pytest

from fusion import DetectionBatch, Tracker, TrackerConfig
from fusion.tracking import existence
from fusion.tracking.clutter import ClutterEstimator, footprint_area

SQUARE = np.array([[-500.0, -500.0], [500.0, -500.0], [500.0, 500.0], [-500.0, 500.0]])


def scan(k, z, pd=0.9, clutter=1e-8, kind="radar", coverage=None, t=None, var=100.0):
    z = np.asarray(z, dtype=float).reshape(-1, 2)
    return DetectionBatch.build(
        f"{kind}-1", kind, k, float(k) if t is None else t, z, np.eye(2) * var,
        coverage=coverage, pd=pd, clutter_density=clutter,
    )


def first_confirmed_scan(tracker, make, scans=10):
    for k in range(scans):
        if tracker.process(make(k)).confirmed.size:
            return k
    return None


def test_thresholds_are_walds():
    th = existence.Thresholds.from_error_probabilities(0.005, 0.01)
    assert th.confirm == pytest.approx(np.log(0.99 / 0.005))
    assert th.drop == pytest.approx(np.log(0.01 / 0.995))
    assert th.ceiling - th.confirm == pytest.approx(np.log(0.995 / 0.01))


def test_hit_score_is_the_likelihood_ratio_against_clutter():
    S = np.array([[300.0, 20.0], [20.0, 200.0]])
    y = np.array([10.0, -5.0])
    d2 = y @ np.linalg.solve(S, y)
    density = np.exp(-0.5 * d2) / (2 * np.pi * np.sqrt(np.linalg.det(S)))
    got = existence.hit_score(0.9, 1e-7, np.array([d2]), np.array([np.log(np.linalg.det(S))]))
    assert got[0] == pytest.approx(np.log(0.9 * density / 1e-7))
    miss = existence.miss_score(0.9, 0.99, np.array([1.0, 0.5, 0.0]))
    np.testing.assert_allclose(miss, np.log1p(-0.9 * 0.99 * np.array([1.0, 0.5, 0.0])))


def test_low_clutter_confirms_in_two_scans_dense_clutter_waits():
    low = first_confirmed_scan(Tracker(), lambda k: scan(k, [[5.0 * k, 0.0]], clutter=1e-9))
    dense = first_confirmed_scan(
        Tracker(), lambda k: scan(k, [[5.0 * k, 0.0]], clutter=1e-4)
    )
    assert low == 1  # the second scan
    assert dense is not None and dense >= 3


@pytest.mark.parametrize("pd, misses", [(0.9, 3), (0.97, 2), (0.3, 14)])
def test_a_dead_targets_track_goes_after_a_few_misses_set_by_pd(pd, misses):
    tracker = Tracker(TrackerConfig(min_miss_time=0.0))
    for k in range(8):
        tracker.process(scan(k, [[5.0 * k, 0.0]], pd=pd))
    assert len(tracker.confirmed()) == 1
    gone = None
    for m in range(1, 20):
        if tracker.process(scan(7 + m, np.empty((0, 2)), pd=pd)).deleted.size:
            gone = m
            break
    assert gone == misses


def test_misses_piled_up_within_a_second_do_not_delete():
    tracker = Tracker()  # min_miss_time = 2 s
    for k in range(8):
        tracker.process(scan(k, [[5.0 * k, 0.0]], pd=0.97))
    for j in range(8):  # eight sensors miss it within 0.8 s
        empty = DetectionBatch.build(f"r{j}", "radar", 0, 7.1 + 0.1 * j, np.empty((0, 2)),
                                     np.empty((0, 2, 2)), pd=0.97, clutter_density=1e-8)
        assert tracker.process(empty).deleted.size == 0
    assert tracker.process(scan(10, np.empty((0, 2)), pd=0.97)).deleted.size == 1


def test_a_miss_at_the_footprint_edge_costs_less_than_one_in_the_middle():
    def score_after_miss(x0):
        tracker = Tracker()
        for k in range(8):
            tracker.process(scan(k, [[x0, 0.0]], kind="drone", pd=0.95, coverage=SQUARE))
        before = tracker.tracks.score[0]
        tracker.process(scan(8, np.empty((0, 2)), kind="drone", pd=0.95, coverage=SQUARE))
        return before - tracker.tracks.score[0]

    assert score_after_miss(495.0) < 0.5 * score_after_miss(0.0)


def test_sensor_without_a_detection_model_gets_the_kind_default_and_learnt_clutter():
    cfg = TrackerConfig()
    assert cfg.detection_model("ugs") == (cfg.ugs_pd, cfg.ugs_clutter)
    assert cfg.detection_model("sonar") == (cfg.unknown_pd, cfg.unknown_clutter)
    estimator = ClutterEstimator()
    rng = np.random.default_rng(1)
    for _ in range(200):  # 50 false detections a scan over 2 km x 1 km
        z = rng.uniform([0.0, 0.0], [2000.0, 1000.0], size=(50, 2))
        estimator.observe("radar-9", 50, footprint_area(z, None))
    assert estimator.density("radar-9") == pytest.approx(50 / 2e6, rel=0.1)
    assert estimator.density("never-seen") == 0.0
    # A footprint's area is its polygon's; too few detections and no polygon: unknown.
    square = np.array([[0.0, 0.0], [2000.0, 0.0], [2000.0, 1000.0], [0.0, 1000.0]])
    assert footprint_area(np.empty((0, 2)), square) == pytest.approx(2e6)
    assert np.isnan(footprint_area(z[:3], None))


def test_heavy_undeclared_clutter_does_not_fill_the_picture():
    rng = np.random.default_rng(5)
    tracker = Tracker()
    confirmed = []
    for k in range(60):
        z = rng.uniform([0.0, 0.0], [10_000.0, 10_000.0], size=(100, 2))
        batch = DetectionBatch.build("radar-x", "radar", k, float(k), z, np.eye(2) * 400.0)
        tracker.process(batch)
        confirmed.append(len(tracker.confirmed()))
    assert np.mean(confirmed[20:]) <= 0.5


def test_a_checkpoint_without_scores_or_modes_still_loads():
    tracker = Tracker()
    for k in range(8):
        tracker.process(scan(k, [[5.0 * k, 0.0]]))
    state = tracker.state_dict()
    for key in ("score", "x_m", "P_m", "mu", "lost_id", "lost_x", "lost_P", "lost_t"):
        state.pop(key)
    restored = Tracker()
    restored.load_state_dict(state)
    assert restored.confirmed().ids.tolist() == tracker.confirmed().ids.tolist()
    result = restored.process(scan(8, [[40.0, 0.0]]))
    assert result.updated.tolist() == tracker.confirmed().ids.tolist()
    assert result.deleted.size == 0 and result.initiated.size == 0


def test_score_changes_when_every_gated_pair_is_assigned_use_each_pairs_own_distance():
    # The short cut (assigned pairs == all pairs, no search) against the general path.
    from fusion.tracking.gating import GatedPairs
    from fusion.tracking.lifecycle import score_changes

    pairs = GatedPairs(np.array([0, 2, 3]), np.array([4, 0, 1]), np.array([1.0, 5.0, 2.5]),
                       np.array([7.0, 8.0, 9.0]))
    z_pred, P_pos = np.zeros((4, 2)), np.broadcast_to(np.eye(2) * 100.0, (4, 2, 2))
    got = score_changes(0.9, 1e-7, 0.99, pairs, pairs.track, pairs.detection, z_pred, P_pos, None)
    hit = existence.hit_score(0.9, 1e-7, pairs.d2, pairs.log_det_S)
    np.testing.assert_array_equal(got[[0, 2, 3]], hit)
    assert got[1] == existence.miss_score(0.9, 0.99, 1.0)
    # One more gated pair, not assigned: the general path, the same numbers.
    more = GatedPairs(np.array([0, 0, 2, 3]), np.array([3, 4, 0, 1]),
                      np.array([0.5, 1.0, 5.0, 2.5]), np.array([1.0, 7.0, 8.0, 9.0]))
    again = score_changes(0.9, 1e-7, 0.99, more, pairs.track, pairs.detection, z_pred, P_pos,
                          None)
    np.testing.assert_array_equal(again, got)
    # Every visible track assigned: no miss is charged.
    three = GatedPairs(np.arange(3), pairs.detection, pairs.d2, pairs.log_det_S)
    all_hit = score_changes(0.9, 1e-7, 0.99, three, three.track, three.detection,
                            z_pred[:3], P_pos[:3], None)
    np.testing.assert_array_equal(all_hit, hit)
