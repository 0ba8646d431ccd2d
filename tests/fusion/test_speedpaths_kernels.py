"""The issue 14 fast paths give exactly what the plain ones give.

Batched modes in one kernel call, flat-index writes into the track table and the
cached footprint geometry are all reorganisations of the same arithmetic, so the
tests ask for equality to the bit, not closeness.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from fusion.tracking import coverage, imm, kalman, motion
from fusion.tracking.config import TrackerConfig
from fusion.tracking.track_table import TrackTable


def random_modes(rng, J, n):
    x = rng.normal(0.0, 50.0, size=(J, 4, n))
    A = rng.normal(size=(J, 4, 4, n))
    P = np.einsum("jikn,jlkn->jiln", A, A) + 4.0 * np.eye(4)[None, :, :, None]
    return x, P


@pytest.mark.parametrize("n", [7, kalman.UPDATE_BLOCK + 3])  # one block, and several
def test_one_call_over_modes_equals_one_call_per_mode(n):
    rng = np.random.default_rng(n)
    x, P = random_modes(rng, 2, n)
    z = rng.normal(0.0, 60.0, size=(2, n))
    R = np.broadcast_to(np.diag([90.0, 110.0])[:, :, None], (2, 2, n)).copy()
    x_all, P_all = kalman.update_batch_last(
        imm.kernel_layout(x), imm.kernel_layout(P), z[:, None], R[:, :, None]
    )
    dt = rng.uniform(0.1, 2.0, size=n)
    accel = np.array([0.04, 4.0])
    xp_all, Pp_all = kalman.predict_batch_last(
        imm.kernel_layout(x), imm.kernel_layout(P), dt, accel[:, None]
    )
    for j in range(2):
        x_j, P_j = kalman.update_batch_last(x[j], P[j], z, R)
        np.testing.assert_array_equal(x_all[:, j], x_j)
        np.testing.assert_array_equal(P_all[:, :, j], P_j)
        xp_j, Pp_j = kalman.predict_batch_last(x[j], P[j], dt, float(accel[j]))
        np.testing.assert_array_equal(xp_all[:, j], xp_j)
        np.testing.assert_array_equal(Pp_all[:, :, j], Pp_j)


def test_mixed_initial_equals_the_textbook_sum():
    rng = np.random.default_rng(3)
    n = 9
    x, P = random_modes(rng, 2, n)
    mu = rng.dirichlet([2.0, 2.0], size=n).T
    M = imm.switching_matrix(rng.uniform(0.1, 3.0, n), np.array([60.0, 8.0]))
    _, omega = imm.mix(mu, M)
    x0, P0 = imm.mixed_initial(x, P, omega)
    for j in range(2):
        w = omega[:, j]
        want_x = w[0] * x[0] + w[1] * x[1]
        np.testing.assert_allclose(x0[j], want_x, rtol=1e-12, atol=1e-9)
        d = [x[i] - want_x for i in range(2)]
        want_P = sum(w[i] * (P[i] + d[i][:, None] * d[i][None, :]) for i in range(2))
        np.testing.assert_allclose(P0[j], want_P, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("k", [1, 10, 300])
def test_table_put_equals_fancy_assignment(k):
    rng = np.random.default_rng(k)
    table = TrackTable(capacity=64)  # grows past it
    table.add(rng.normal(size=(4, 500)), rng.normal(size=(4, 4, 500)), 0.0)
    rows = np.sort(rng.choice(500, k, replace=False))
    values = rng.normal(size=(2, 4, 4, k))
    want = table.P_m.copy()
    want[..., rows] = values
    table.put("P_m", rows, values)
    np.testing.assert_array_equal(table.P_m, want)
    table.put("x", slice(0, 500), 1.5)
    np.testing.assert_array_equal(table.x, 1.5)
    assert table.n == 500


def test_rows_in_polygon_against_the_plain_test_and_the_cache_stays_bounded():
    rng = np.random.default_rng(5)
    xy = rng.uniform(-100.0, 100.0, size=(2000, 2))
    u_shape = np.array([[0, 0], [60, 0], [60, 60], [40, 60], [40, 20], [20, 20], [20, 60],
                        [0, 60]], dtype=float)
    want = np.flatnonzero(shapely.contains_xy(shapely.Polygon(u_shape), xy[:, 0], xy[:, 1]))
    for _ in range(2):  # built, then cached (and prepared)
        got = coverage.rows_in_polygon(xy[:, 0], xy[:, 1], u_shape)
        np.testing.assert_array_equal(got, want)
    for i in range(coverage.MAX_CACHED + 10):
        coverage.rows_in_polygon(xy[:5, 0], xy[:5, 1], u_shape + i)
    assert len(coverage._cache) <= coverage.MAX_CACHED


@pytest.mark.parametrize("moved, after", [(1, 0), (1, 7), (3, 0), (2, 5)])
def test_sort_by_id_moves_whole_rows_as_a_stable_argsort(moved, after):
    # ``moved`` rows took back older ids (as a reacquisition does) and sit before the
    # ``after`` newest rows: one row is the slice-shift case, more the general gather.
    rng = np.random.default_rng(moved + 10 * after)
    table = TrackTable(capacity=700)
    table.add(rng.normal(size=(4, 600)), rng.normal(size=(4, 4, 600)), 0.0)
    table.x_m[...] = rng.normal(size=table.x_m.shape)
    table.P_m[...] = rng.normal(size=table.P_m.shape)
    table.score[:] = rng.normal(size=600)
    table.id[:] = np.arange(0, 1200, 2)[:600]
    k = 600 - moved - after
    table.id[k : k + moved] = np.sort(rng.choice(table.id[:k], moved, replace=False)) + 1
    order = np.argsort(table.id, kind="stable")
    want = {name: getattr(table, name)[..., order].copy() for name in ("id", "x", "P", "x_m",
                                                                      "P_m", "score", "t")}
    table.sort_by_id()
    for name, values in want.items():
        np.testing.assert_array_equal(getattr(table, name), values)


def test_rows_in_a_rectangle_as_shapely_says_edge_points_outside():
    rng = np.random.default_rng(9)
    lo, hi = np.array([-30.0, 10.0]), np.array([40.0, 55.0])
    # Points inside, outside and exactly on every edge and corner.
    xy = rng.uniform(-60.0, 80.0, size=(3000, 2))
    xy[:400, 0] = rng.choice([lo[0], hi[0]], 400)
    xy[400:800, 1] = rng.choice([lo[1], hi[1]], 400)
    xy[800:810] = [lo[0], lo[1]]
    for box in (np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]),
                np.array([[lo[0], hi[1]], [hi[0], hi[1]], [hi[0], lo[1]], [lo[0], lo[1]]])):
        want = np.flatnonzero(shapely.contains_xy(shapely.Polygon(box), xy[:, 0], xy[:, 1]))
        assert coverage._footprint(box).box
        np.testing.assert_array_equal(coverage.rows_in_polygon(xy[:, 0], xy[:, 1], box), want)
    bowtie = np.array([[lo[0], lo[1]], [hi[0], hi[1]], [hi[0], lo[1]], [lo[0], hi[1]]])
    assert not coverage._footprint(bowtie).box


def test_combine_position_is_the_position_block_of_combine():
    rng = np.random.default_rng(5)
    x, P = random_modes(rng, 2, 11)
    mu = rng.dirichlet([2.0, 2.0], size=11).T
    x_c, P_c = imm.combine(x, P, mu)
    x_pos, P_pos = imm.combine_position(x, P, mu)
    np.testing.assert_array_equal(x_pos, x_c)
    np.testing.assert_array_equal(P_pos, P_c[:2, :2])


def predicted_table(rng, imm_on: bool, n: int):
    """A table of ``n`` tracks with distinct modes, the model, and a prediction 1 s on."""
    cfg = TrackerConfig(imm=imm_on)
    model = motion.MotionModel.from_config(cfg)
    table = TrackTable(capacity=n + 5)  # spare capacity: live rows are not contiguous
    x, P = random_modes(rng, 2, n)
    table.add(x[0], P[0], 10.0)
    if imm_on:
        table.put("x_m", slice(None), x)
        table.put("P_m", slice(None), P)
        table.mu[:] = rng.dirichlet([2.0, 2.0], size=n).T
    return table, model


@pytest.mark.parametrize("imm_on", [True, False], ids=["imm", "cv"])
@pytest.mark.parametrize("sel", ["slice", "rows"])
def test_update_of_every_row_equals_prediction_then_update_of_the_hit_rows(imm_on, sel):
    """update_predicted: rows without a detection hold exactly their prediction, rows
    with one exactly what updating them alone after writing the prediction gives."""
    rng = np.random.default_rng(7)
    n = 12
    rows = np.arange(n) if sel == "slice" else np.array([1, 2, 4, 5, 7, 8, 9, 11])
    chosen = slice(0, n) if sel == "slice" else rows
    hit = np.zeros(rows.size, dtype=bool)
    hit[[0, 2, 3, 6]] = True
    z = rng.normal(0.0, 60.0, size=(2, hit.sum()))
    R = np.broadcast_to(np.diag([90.0, 110.0])[:, :, None], (2, 2, hit.sum())).copy()

    plain, model = predicted_table(np.random.default_rng(1), imm_on, n)
    motion.predict_rows(plain, chosen, 11.0, model)
    motion.update_rows(plain, rows[hit], z, R, model)

    fast, _ = predicted_table(np.random.default_rng(1), imm_on, n)
    predicted = motion.predict_modes(fast, chosen, 11.0, model)
    fast.t[chosen] = 11.0
    z_all = predicted.x[:2].copy()
    z_all[:, hit] = z
    R_all = np.broadcast_to(np.eye(2)[:, :, None], (2, 2, rows.size)).copy()
    R_all[:, :, hit] = R
    motion.update_predicted(fast, chosen, predicted, hit, z_all, R_all, model)

    for name in ("x", "P", "x_m", "P_m", "mu", "t"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name), err_msg=name)
