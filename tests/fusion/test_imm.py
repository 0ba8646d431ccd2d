"""The batched IMM kernels against filterpy's IMMEstimator, one estimator per track."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import IMMEstimator, KalmanFilter

from fusion.tracking import imm, kalman

ACCEL_VARS = np.array([0.2**2, 2.0**2])
DT = 0.7
M_FIXED = np.array([[0.97, 0.03], [0.10, 0.90]])


def filterpy_imm(x, P, mu, R):
    """One filterpy IMMEstimator with two CV KalmanFilter modes, state [e, n, ve, vn]."""
    filters = []
    for j, q in enumerate(ACCEL_VARS):
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.x = x[j].copy()
        kf.P = P[j].copy()
        kf.F = kalman.transition_matrix(DT)
        kf.Q = Q_discrete_white_noise(dim=2, dt=DT, var=q, block_size=2, order_by_dim=False)
        kf.H = np.hstack([np.eye(2), np.zeros((2, 2))])
        kf.R = R.copy()
        filters.append(kf)
    return IMMEstimator(filters, mu.copy(), M_FIXED)


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def random_tracks(rng, n):
    x = rng.normal(0.0, 50.0, size=(n, 2, 4))
    A = rng.normal(size=(n, 2, 4, 4))
    P = A @ A.transpose(0, 1, 3, 2) + 4.0 * np.eye(4)
    mu = rng.dirichlet([2.0, 2.0], size=n)
    R = np.stack([np.diag(rng.uniform(50.0, 150.0, 2)) for _ in range(n)])
    return x, P, mu, R


def to_batch_last(x, P, mu):
    """(N, J, 4), (N, J, 4, 4), (N, J) -> (J, 4, N), (J, 4, 4, N), (J, N)."""
    return np.moveaxis(x, 0, -1).copy(), np.moveaxis(P, 0, -1).copy(), mu.T.copy()


def test_predict_and_update_match_filterpy_over_several_cycles():
    rng = np.random.default_rng(7)
    n = 12
    x, P, mu, R = random_tracks(rng, n)
    references = [filterpy_imm(x[i], P[i], mu[i], R[i]) for i in range(n)]
    xb, Pb, mub = to_batch_last(x, P, mu)
    Rb = np.moveaxis(R, 0, -1)
    dt = np.full(n, DT)
    for _ in range(5):
        x_pred, P_pred, cbar = imm.predict(xb, Pb, mub, M_FIXED, dt, ACCEL_VARS)
        z = rng.normal(0.0, 60.0, size=(n, 2))
        for i, ref in enumerate(references):
            ref.predict()
            for j in range(2):
                close(x_pred[j][:, i], ref.filters[j].x)
                close(P_pred[j][..., i], ref.filters[j].P)
            # filterpy's combined prior weights the modes with the last posterior mu
            one = slice(i, i + 1)
            x_c, P_c = imm.combine(x_pred[..., one], P_pred[..., one], mub[:, one])
            np.testing.assert_allclose(x_c[:, 0], ref.x_prior, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(P_c[..., 0], ref.P_prior, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(cbar[:, i], ref.cbar, rtol=1e-9)
            ref.update(z[i])
        xb, Pb, mub = imm.update(x_pred, P_pred, cbar, z.T.copy(), Rb)
        x_c, P_c = imm.combine(xb, Pb, mub)
        for i, ref in enumerate(references):
            np.testing.assert_allclose(mub[:, i], ref.mu, rtol=1e-9)
            np.testing.assert_allclose(x_c[:, i], ref.x, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(P_c[..., i], ref.P, rtol=1e-9, atol=1e-9)
            for j in range(2):
                np.testing.assert_allclose(xb[j][:, i], ref.filters[j].x, rtol=1e-9, atol=1e-9)
                np.testing.assert_allclose(Pb[j][..., i], ref.filters[j].P, rtol=1e-9, atol=1e-9)


def test_switching_matrix_rows_are_distributions_and_dt_zero_keeps_the_mode():
    dt = np.array([0.0, 0.25, 1.0, 10.0])
    M = imm.switching_matrix(dt, np.array([120.0, 10.0]))
    np.testing.assert_allclose(M.sum(axis=1), 1.0)
    np.testing.assert_array_equal(M[..., 0], np.eye(2))
    assert M[0, 1, 3] > M[0, 1, 2] > M[0, 1, 1] > 0  # longer gaps, more switching
    assert M[1, 0, 2] > M[0, 1, 2]  # manoeuvres are short, quiet spells long


def test_a_turn_moves_the_weight_to_the_manoeuvring_mode():
    rng = np.random.default_rng(3)
    x = np.zeros((2, 4, 1))
    x[:, 2] = 10.0  # heading east at 10 m/s
    P = np.broadcast_to(np.diag([25.0, 25.0, 4.0, 4.0])[None, ..., None], (2, 4, 4, 1)).copy()
    mu = np.array([[0.9], [0.1]])
    R = (np.eye(2) * 25.0)[..., None]
    sojourn = np.array([120.0, 10.0])
    position, velocity = np.zeros(2), np.array([10.0, 0.0])
    for k in range(30):
        if k == 10:
            velocity = np.array([0.0, 10.0])  # a sharp left turn
        position = position + velocity
        dt = np.ones(1)
        x, P, cbar = imm.predict(x, P, mu, imm.switching_matrix(dt, sojourn), dt, ACCEL_VARS)
        z = (position + rng.normal(0.0, 5.0, 2))[:, None]
        x, P, mu = imm.update(x, P, cbar, z, R)
        if k == 9:
            assert mu[0, 0] > 0.8  # straight: quiet
        if k == 12:
            assert mu[1, 0] > 0.5  # just after the turn: manoeuvring
    assert mu[0, 0] > 0.5  # straight again
    np.testing.assert_allclose(mu.sum(axis=0), 1.0)


@pytest.mark.parametrize("n", [1, 5])
def test_combine_of_identical_modes_is_the_mode(n):
    rng = np.random.default_rng(n)
    x1 = rng.normal(size=(4, n))
    A = rng.normal(size=(4, 4, n))
    P1 = np.einsum("ikn,jkn->ijn", A, A)
    x, P = imm.combine(np.stack([x1, x1]), np.stack([P1, P1]), np.full((2, n), 0.5))
    np.testing.assert_allclose(x, x1)
    np.testing.assert_allclose(P, P1)
