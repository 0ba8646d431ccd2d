"""The performance paths give the same answers as the plain ones."""

import numpy as np
from filterpy.kalman import KalmanFilter

from fusion.tracking import kalman, kalman_update
from fusion.tracking.gating import gate, gate_threshold

GAMMA = gate_threshold(0.99)


def filterpy_update(x, P, z, R):
    kf = KalmanFilter(dim_x=4, dim_z=2)
    kf.x, kf.P, kf.H = x.copy(), P.copy(), np.eye(2, 4)
    kf.update(z, R=R)
    return kf


def assert_matches_filterpy(x_post, P_post, kf):
    np.testing.assert_allclose(x_post, kf.x, rtol=1e-9, atol=1e-9 * np.abs(kf.x).max())
    np.testing.assert_allclose(P_post, kf.P, rtol=1e-9, atol=1e-9 * np.abs(kf.P).max())


def random_updates(rng, n):
    x = rng.normal(scale=[1000, 1000, 10, 10], size=(n, 4))
    A = rng.normal(size=(n, 4, 4))
    P = A @ A.transpose(0, 2, 1) + np.eye(4) * 25.0
    z = x[:, :2] + rng.normal(scale=20.0, size=(n, 2))
    B = rng.normal(size=(n, 2, 2)) * 10
    R = B @ B.transpose(0, 2, 1) + np.eye(2) * 100.0
    return x, P, z, R


def test_blocked_update_matches_filterpy_across_block_boundaries():
    rng = np.random.default_rng(2)
    n = 2 * kalman.UPDATE_BLOCK + 37  # three blocks of equal size
    x, P, z, R = random_updates(rng, n)
    x_post, P_post = kalman.update(x, P, z, R)
    step = -(-n // 3)
    # spot-check filters on both sides of each block boundary
    for i in (0, step - 1, step, 2 * step - 1, 2 * step, n - 1):
        assert_matches_filterpy(x_post[i], P_post[i], filterpy_update(x[i], P[i], z[i], R[i]))


def test_the_two_forms_of_the_joseph_update_agree(monkeypatch):
    rng = np.random.default_rng(6)
    x, P, z, R = random_updates(rng, 300)
    x_post, P_post = kalman.update(x, P, z, R)
    monkeypatch.setattr(kalman_update, "SHRINK_LIMIT", 0.0)  # every block takes the products
    x_ref, P_ref = kalman.update(x, P, z, R)
    np.testing.assert_array_equal(x_post, x_ref)
    scale = np.abs(P_ref).max(axis=(1, 2))[:, None, None]
    assert (np.abs(P_post - P_ref) / scale).max() < 1e-13
    np.testing.assert_array_equal(P_post, P_post.transpose(0, 2, 1))


def test_a_collapsing_variance_takes_the_joseph_products(monkeypatch):
    """An hour of coasting meets a 10 cm fix: position variance shrinks 1e16-fold, and
    the multiplied-out form loses the posterior to round-off (its diagonal comes out
    zero or negative), so that filter is redone with the products; the others are
    not, and every filter matches filterpy."""
    calls = []
    products = kalman_update._joseph_products
    monkeypatch.setattr(
        kalman_update,
        "_joseph_products",
        lambda P, *a: calls.append(P.shape[-1]) or products(P, *a),
    )
    rng = np.random.default_rng(3)
    x, P, z, R = random_updates(rng, 40)
    kalman.update(x, P, z, R)
    assert calls == []
    lost = np.array([[0.0, 0.0, 5.0, -3.0]])
    lost, P_lost = kalman.predict(lost, np.diag([100.0, 100.0, 25.0, 25.0])[None], [3600.0], 4.0)
    x[7], P[7], z[7], R[7] = lost[0], P_lost[0], lost[0, :2] + 30.0, np.eye(2) * 0.01
    x_post, P_post = kalman.update(x, P, z, R)
    assert calls == [1]
    for i in (0, 7, 39):
        assert_matches_filterpy(x_post[i], P_post[i], filterpy_update(x[i], P[i], z[i], R[i]))
    assert np.linalg.eigvalsh(P_post[7]).min() > 0


def test_hash_grid_with_very_wide_tracks_finds_every_pair():
    rng = np.random.default_rng(8)
    z_pred = rng.uniform(0, 20_000, size=(3000, 2))
    z = rng.uniform(0, 20_000, size=(2500, 2))
    variance = np.full(3000, 400.0)
    variance[:5] = 1e8  # coasting tracks whose gate spans far more than 64 grid cells
    P_pos = np.eye(2) * variance[:, None, None]
    R = np.broadcast_to(np.eye(2) * 100.0, (2500, 2, 2)).copy()
    fast = gate(z_pred, P_pos, z, R, GAMMA, dense_pair_limit=0)
    full = gate(z_pred, P_pos, z, R, GAMMA, dense_pair_limit=10**9)
    assert np.isin(np.arange(5), fast.track).all()  # the wide ones were searched
    np.testing.assert_array_equal(fast.track, full.track)
    np.testing.assert_array_equal(fast.detection, full.detection)
    np.testing.assert_allclose(fast.d2, full.d2)


def test_dense_and_sparse_solvers_find_the_same_optimum(monkeypatch):
    from fusion.tracking import association

    rng = np.random.default_rng(4)
    track = np.repeat(np.arange(200), 3)
    detection = rng.integers(0, 400, track.size)
    keep = np.unique(track * 1000 + detection, return_index=True)[1]
    track, detection = track[keep], detection[keep]
    cost = rng.uniform(0.0, 9.0, track.size)
    miss = np.full(200, 12.0)

    def total(t, d):
        lookup = dict(zip(zip(track.tolist(), detection.tolist(), strict=True), cost, strict=True))
        taken = sum(lookup[p] for p in zip(t.tolist(), d.tolist(), strict=True))
        return taken + miss[0] * (200 - t.size)

    dense = association.assign(200, 400, track, detection, cost, miss)
    monkeypatch.setattr(association, "DENSE_LIMIT", 0)
    sparse = association.assign(200, 400, track, detection, cost, miss)
    assert total(*dense) == total(*sparse)
    assert dense[0].size > 150
