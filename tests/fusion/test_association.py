"""Gating and global nearest neighbour assignment on hand-built cases."""

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from fusion.tracking import gating
from fusion.tracking.association import assign
from fusion.tracking.coverage import points_in_polygon
from fusion.tracking.gating import gate, gate_threshold, gate_within

GAMMA = gate_threshold(0.99)
EYE = np.eye(2)


def run(z_pred, z, var_track=100.0, var_det=100.0, dense_pair_limit=4096):
    z_pred, z = np.asarray(z_pred, float), np.asarray(z, float)
    P_pos = np.broadcast_to(EYE * var_track, (len(z_pred), 2, 2)).copy()
    R = np.broadcast_to(EYE * var_det, (len(z), 2, 2)).copy()
    pairs = gate(z_pred, P_pos, z, R, GAMMA, dense_pair_limit)
    miss = np.full(len(z_pred), GAMMA + np.log((var_track + var_det) ** 2))
    t, d = assign(
        len(z_pred), len(z), pairs.track, pairs.detection, pairs.d2 + pairs.log_det_S, miss
    )
    return dict(zip(t.tolist(), d.tolist(), strict=True)), pairs


def test_gate_threshold_is_chi_square_quantile():
    assert GAMMA == pytest.approx(-2 * np.log(0.01))


def test_crossing_targets_take_the_globally_best_pairs():
    # Two targets crossing: each detection is inside both gates; greedy on track 0
    # would take detection 0 (closest to it) and leave track 1 a worse pair.
    tracks = [[0.0, 0.0], [20.0, 0.0]]
    dets = [[12.0, 0.0], [31.0, 0.0]]
    result, pairs = run(tracks, dets)
    assert len(pairs) == 4
    assert result == {0: 0, 1: 1}


def test_detection_inside_two_gates_goes_to_the_nearer_track():
    result, pairs = run([[0.0, 0.0], [30.0, 0.0]], [[10.0, 0.0]])
    assert len(pairs) == 2
    assert result == {0: 0}


def test_tight_track_keeps_its_detection_against_a_vague_one():
    # Both tracks sit at the same distance; ln|S| favours the precise track.
    z_pred = np.array([[0.0, 0.0], [0.0, 0.0]])
    P_pos = np.array([EYE * 25.0, EYE * 2500.0])
    R = np.array([EYE * 25.0])
    z = np.array([[5.0, 0.0]])
    pairs = gate(z_pred, P_pos, z, R, GAMMA)
    miss = np.full(2, GAMMA + np.log(np.linalg.det(P_pos[1] + R[0])))
    t, d = assign(2, 1, pairs.track, pairs.detection, pairs.d2 + pairs.log_det_S, miss)
    assert t.tolist() == [0] and d.tolist() == [0]


def test_far_detection_is_gated_out():
    result, pairs = run([[0.0, 0.0]], [[1000.0, 0.0]])
    assert len(pairs) == 0 and result == {}


def brute_force(cost, miss):
    """Exhaustive optimum over all partial matchings (small cases only)."""
    n, m = cost.shape
    best = np.inf
    for choice in itertools.product(range(-1, m), repeat=n):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)):
            continue
        total = sum(miss[i] if c < 0 else cost[i, c] for i, c in enumerate(choice))
        best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_assignment_is_optimal_on_random_clusters(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 6), rng.integers(1, 6)
    z_pred = rng.uniform(0, 60, size=(n, 2))
    z = rng.uniform(0, 60, size=(m, 2))
    P_pos = np.broadcast_to(EYE * 100.0, (n, 2, 2)).copy()
    R = np.broadcast_to(EYE * 100.0, (m, 2, 2)).copy()
    pairs = gate(z_pred, P_pos, z, R, GAMMA)
    cost = np.full((n, m), np.inf)
    cost[pairs.track, pairs.detection] = pairs.d2 + pairs.log_det_S
    miss = np.full(n, GAMMA + np.log(200.0**2))
    t, d = assign(n, m, pairs.track, pairs.detection, cost[pairs.track, pairs.detection], miss)
    chosen = miss.sum() - miss[t].sum() + cost[t, d].sum()
    assert chosen == pytest.approx(brute_force(cost, miss))


def _correlated(rng, n, lo, hi):
    """Random position covariances (n, 2, 2) with variances in [lo, hi] and correlation."""
    sx, sy = np.sqrt(rng.uniform(lo, hi, (2, n)))
    rho = rng.uniform(-0.9, 0.9, n)
    return np.stack([sx**2, rho * sx * sy, rho * sx * sy, sy**2], axis=1).reshape(n, 2, 2)


@pytest.mark.parametrize("scene", ["sweep", "grid"])
def test_spatial_pregate_finds_the_same_pairs_as_testing_all(scene, monkeypatch):
    # "sweep": few detections per track's east strip, the sweep finds the pairs;
    # "grid": very mixed radii crowd the strips, the hash grid (and trees) do.
    rng = np.random.default_rng(5)
    if scene == "sweep":
        z_pred = rng.uniform(0, 40_000, size=(400, 2))
        z = np.vstack([z_pred[:250] + rng.normal(0, 30, (250, 2)),
                       rng.uniform(0, 40_000, size=(50, 2))])
        P_pos = _correlated(rng, 400, 50.0, 2e3)
    else:
        z_pred = rng.uniform(0, 5000, size=(400, 2))
        z = rng.uniform(0, 5000, size=(300, 2))
        P_pos = (EYE * rng.uniform(50, 5e4, size=400)[:, None, None]).copy()
    R = np.broadcast_to(EYE * 400.0, (300, 2, 2)).copy()
    swept = []
    sweep = gating._sweep_pairs
    monkeypatch.setattr(gating, "_sweep_pairs", lambda *a: swept.append(sweep(*a)) or swept[-1])
    fast = gate(z_pred, P_pos, z, R, GAMMA, dense_pair_limit=0)
    assert (swept[0] is not None) == (scene == "sweep")
    full = gate(z_pred, P_pos, z, R, GAMMA, dense_pair_limit=10**9)
    assert len(fast) > 100
    np.testing.assert_array_equal(fast.track, full.track)
    np.testing.assert_array_equal(fast.detection, full.detection)
    np.testing.assert_allclose(fast.d2, full.d2)


@pytest.mark.parametrize("layout", ["scattered", "clustered", "one_road"])
def test_self_gate_sweep_finds_the_pairs_gate_finds(layout, monkeypatch):
    # The duplicate search's self-join: every pair a < b that gate(z, P, z, P) passes,
    # no more, whether the sweep does it (scattered, clustered) or hands over to gate
    # (a north-south road: every box overlaps every other along east).
    rng = np.random.default_rng({"scattered": 1, "clustered": 2, "one_road": 3}[layout])
    n = 600
    if layout == "scattered":  # a third of them near-duplicates of another
        z = rng.uniform(0, 60_000, (n, 2))
        z[::3] = z[1::3] + rng.normal(0, 20, (n // 3, 2))
    elif layout == "clustered":
        z = rng.uniform(0, 60_000, (n // 3, 2)).repeat(3, axis=0) + rng.normal(0, 30, (n, 2))
    else:
        z = np.column_stack([rng.normal(0, 5, n), rng.uniform(0, 50_000, n)])
    P_pos = _correlated(rng, n, 25.0, 2500.0)
    handed_over = []
    monkeypatch.setattr(gating, "gate", lambda *a, **k: handed_over.append(1) or gate(*a, **k))
    a, b = gate_within(z, P_pos, GAMMA)
    assert bool(handed_over) == (layout == "one_road")
    full = gate(z, P_pos, z, P_pos, GAMMA, dense_pair_limit=10**9)
    once = full.track < full.detection
    want = sorted(zip(full.track[once].tolist(), full.detection[once].tolist(), strict=True))
    assert len(want) > 20
    assert (a < b).all()
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == want


def test_large_problem_matches_dense_linear_sum_assignment():
    rng = np.random.default_rng(9)
    truth = rng.uniform(0, 20000, size=(300, 2))
    z_pred = truth + rng.normal(scale=10, size=truth.shape)
    z = np.vstack([truth + rng.normal(scale=10, size=truth.shape), rng.uniform(0, 20000, (50, 2))])
    result, pairs = run(z_pred, z)
    n, m = len(z_pred), len(z)
    # dense reference: real columns plus one private miss column per track
    big = 1e9
    dense = np.full((n, m + n), big)
    dense[pairs.track, pairs.detection] = pairs.d2 + pairs.log_det_S
    dense[np.arange(n), m + np.arange(n)] = GAMMA + np.log(200.0**2)
    rows, cols = linear_sum_assignment(dense)
    reference = {r: c for r, c in zip(rows, cols, strict=True) if c < m}
    ours = sum(dense[t, d] for t, d in result.items()) + (n - len(result)) * (
        GAMMA + np.log(200.0**2)
    )
    assert ours == pytest.approx(dense[rows, cols].sum())
    assert len(result) == len(reference)


def test_points_in_polygon_concave_and_outside_bbox():
    # a U shape: the notch is inside the bounding box but outside the polygon
    u_shape = np.array(
        [[0, 0], [30, 0], [30, 30], [20, 30], [20, 10], [10, 10], [10, 30], [0, 30]], float
    )
    points = np.array([[5, 5], [15, 20], [25, 25], [50, 5], [-1, -1], [15, 5]], float)
    np.testing.assert_array_equal(
        points_in_polygon(points, u_shape), [True, False, True, False, False, True]
    )


def test_uncontested_pairs_come_back_in_track_order_whatever_their_input_order():
    # Every pair isolated: assign settles them without the solver, and must still
    # return them sorted by track when the caller's pairs were not.
    track, det = np.array([2, 0, 3, 1]), np.array([0, 2, 3, 1])
    cost = np.array([1.0, 2.0, 50.0, 3.0])
    got = assign(4, 4, track, det, cost, np.full(4, 10.0))  # pair (3, 3) loses to its miss
    np.testing.assert_array_equal(got[0], [0, 1, 2])
    np.testing.assert_array_equal(got[1], [2, 1, 0])
    sorted_in = assign(4, 4, np.sort(track), det[np.argsort(track)], cost[np.argsort(track)],
                       np.full(4, 10.0))
    np.testing.assert_array_equal(sorted_in[0], got[0])
    np.testing.assert_array_equal(sorted_in[1], got[1])


def test_dense_gate_matches_every_pair_written_out():
    # The dense path (all pairs as (N, M) broadcasts) against the formula per pair.
    rng = np.random.default_rng(8)
    z_pred = rng.uniform(0.0, 300.0, (7, 2))
    z = rng.uniform(0.0, 300.0, (9, 2))
    A = rng.normal(size=(7, 2, 2)) * 20.0
    P_pos = A @ A.transpose(0, 2, 1) + np.eye(2) * 50.0
    R = np.broadcast_to(np.diag([100.0, 60.0]), (9, 2, 2)).copy()
    got = gate(z_pred, P_pos, z, R, 9.21)
    want = []
    for i, j in itertools.product(range(7), range(9)):
        S = P_pos[i] + R[j]
        y = z[j] - z_pred[i]
        d2 = float(y @ np.linalg.solve(S, y))
        if d2 <= 9.21:
            want.append((i, j, d2, np.log(np.linalg.det(S))))
    assert 5 < len(want) < 63
    np.testing.assert_array_equal(got.track, [w[0] for w in want])
    np.testing.assert_array_equal(got.detection, [w[1] for w in want])
    np.testing.assert_allclose(got.d2, [w[2] for w in want], rtol=1e-9)
    np.testing.assert_allclose(got.log_det_S, [w[3] for w in want], rtol=1e-9)
