"""Batched Kalman kernels for the nearly-constant-velocity model in two dimensions.

Pure functions whose leading axis indexes independent filters. State is
``x = [east, north, v_east, v_north]``; a measurement is a position, so
``H = [I 0]``. The numerics follow ``filterpy.kalman.KalmanFilter`` (the reference
oracle in the tests): same ``Q`` as ``filterpy.common.Q_discrete_white_noise(dim=2,
block_size=2, order_by_dim=False)`` and the Joseph-form covariance update.

The covariance algebra is written on 2x2 blocks ``P = [[A, B], [B', C]]`` (position,
position-velocity, velocity) because ``F`` and ``H`` are sparse: a blockwise product
costs a handful of vectorised multiply-adds, where a general ``F @ P @ F.T`` over
(N, 4, 4) stacks costs several batched matmuls.

References: Bar-Shalom, Li, Kirubarajan, *Estimation with Applications to Tracking and
Navigation* (2001), sec. 6.3 (DWNA model) and 5.2; Labbe, *Kalman and Bayesian Filters
in Python*, ch. 6-7.
"""

from __future__ import annotations

import numpy as np


def transition_matrix(dt: float) -> np.ndarray:
    """Constant-velocity ``F`` for one step of ``dt`` seconds, shape (4, 4)."""
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    return F


def process_noise(dt: np.ndarray, accel_var: float) -> np.ndarray:
    """Discrete white-noise-acceleration ``Q`` for each ``dt``.

    ``Q = G G' sigma_a^2`` with ``G = [dt^2/2, dt]'`` per axis, equal to
    ``Q_discrete_white_noise(dim=2, dt=dt, var=accel_var, block_size=2,
    order_by_dim=False)``.

    Parameters
    ----------
    dt : ndarray, shape (N,)
        Prediction intervals in seconds (may be negative for retrodiction; ``Q`` then
        uses ``|dt|``).
    accel_var : float
        Variance of the white acceleration noise, (m/s^2)^2.

    Returns
    -------
    Q : ndarray, shape (N, 4, 4)
    """
    dt = np.abs(np.asarray(dt, dtype=float))
    q_pp = accel_var * dt**4 / 4.0
    q_pv = accel_var * dt**3 / 2.0
    q_vv = accel_var * dt**2
    Q = np.zeros((dt.shape[0], 4, 4))
    Q[:, 0, 0] = Q[:, 1, 1] = q_pp
    Q[:, 0, 2] = Q[:, 2, 0] = Q[:, 1, 3] = Q[:, 3, 1] = q_pv
    Q[:, 2, 2] = Q[:, 3, 3] = q_vv
    return Q


def predict(
    x: np.ndarray, P: np.ndarray, dt: np.ndarray, accel_var: float
) -> tuple[np.ndarray, np.ndarray]:
    """Predict each filter ``dt[i]`` seconds ahead.

    ``x' = F x`` and ``P' = F P F' + Q``, with ``F`` the constant-velocity transition.

    Parameters
    ----------
    x : ndarray, shape (N, 4)
    P : ndarray, shape (N, 4, 4)
    dt : ndarray, shape (N,)
        Per-filter interval in seconds; a negative value predicts backwards.
    accel_var : float
        White acceleration noise variance, (m/s^2)^2.

    Returns
    -------
    x_pred : ndarray, shape (N, 4)
    P_pred : ndarray, shape (N, 4, 4)
    """
    dt = np.asarray(dt, dtype=float)
    d = dt[:, None]
    x_pred = x.copy()
    x_pred[:, :2] += d * x[:, 2:]  # position += dt * velocity

    dd = dt[:, None, None]
    A = P[:, :2, :2]
    B = P[:, :2, 2:]
    C = P[:, 2:, 2:]
    BC = B + dd * C
    P_pred = np.empty_like(P)
    # F P F' on blocks: [[A + dt (B + B') + dt^2 C, B + dt C], [(B + dt C)', C]]
    P_pred[:, :2, :2] = A + dd * (B + B.transpose(0, 2, 1)) + dd * dd * C
    P_pred[:, :2, 2:] = BC
    P_pred[:, 2:, :2] = BC.transpose(0, 2, 1)
    P_pred[:, 2:, 2:] = C
    P_pred += process_noise(dt, accel_var)
    return x_pred, P_pred


def inv2(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of symmetric 2x2 matrices in closed form.

    Parameters
    ----------
    S : ndarray, shape (N, 2, 2)

    Returns
    -------
    S_inv : ndarray, shape (N, 2, 2)
    det : ndarray, shape (N,)
    """
    a, b, c = S[:, 0, 0], S[:, 0, 1], S[:, 1, 1]
    det = a * c - b * b
    S_inv = np.empty_like(S)
    S_inv[:, 0, 0] = c / det
    S_inv[:, 1, 1] = a / det
    S_inv[:, 0, 1] = S_inv[:, 1, 0] = -b / det
    return S_inv, det


def update(
    x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Update each filter with one position measurement (``H = [I 0]``).

    Joseph form ``P = (I - K H) P (I - K H)' + K R K'``: it stays symmetric
    positive-definite under round-off and for a suboptimal ``K``, which the simple
    ``(I - K H) P`` does not guarantee over thousands of updates.

    Parameters
    ----------
    x : ndarray, shape (N, 4)
        Predicted states.
    P : ndarray, shape (N, 4, 4)
        Predicted covariances.
    z : ndarray, shape (N, 2)
        Measured positions.
    R : ndarray, shape (N, 2, 2)
        Measurement covariances.

    Returns
    -------
    x_post : ndarray, shape (N, 4)
    P_post : ndarray, shape (N, 4, 4)
    """
    y = z - x[:, :2]  # y = z - H x
    PHT = P[:, :, :2]  # P H'
    S = P[:, :2, :2] + R  # S = H P H' + R
    S_inv, _ = inv2(S)
    K = PHT @ S_inv  # K = P H' S^-1
    x_post = x + (K @ y[:, :, None])[:, :, 0]  # x = x + K y
    I_KH = np.broadcast_to(np.eye(4), P.shape).copy()
    I_KH[:, :, :2] -= K  # I - K H
    P_post = I_KH @ P @ I_KH.transpose(0, 2, 1) + K @ R @ K.transpose(0, 2, 1)
    # Round-off in the products leaves P a few ulps off symmetric; over long runs that
    # drift compounds, so restore symmetry exactly (a change far below 1e-9 relative).
    return x_post, 0.5 * (P_post + P_post.transpose(0, 2, 1))


def retrodict(
    x: np.ndarray, P: np.ndarray, lag: np.ndarray, accel_var: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrodict current states to an earlier measurement time, for out-of-sequence updates.

    One-lag approximation of Bar-Shalom's algorithm Bl1 ("Update with out-of-sequence
    measurements in tracking: exact solution", IEEE T-AES 38(3), 2002): the state at
    ``t_k - lag`` is ``x_b = F(-lag) x``, its covariance
    ``P_b = F(-lag) (P + Q(lag)) F(-lag)'`` and the cross-covariance of the current
    state with it ``P_xb = (P - Q(lag)) F(-lag)'``.

    Parameters
    ----------
    x : ndarray, shape (N, 4)
    P : ndarray, shape (N, 4, 4)
    lag : ndarray, shape (N,)
        How far back the measurement lies, seconds (>= 0).
    accel_var : float

    Returns
    -------
    x_b : ndarray, shape (N, 4)
    P_b : ndarray, shape (N, 4, 4)
    P_xb : ndarray, shape (N, 4, 4)
    """
    Q = process_noise(lag, accel_var)
    x_b, _ = predict(x, P, -lag, 0.0)
    # F(-lag) M F(-lag)' reuses the blockwise predict with zero process noise.
    _, P_b = predict(x, P + Q, -lag, 0.0)
    F_back_T = np.broadcast_to(np.eye(4), P.shape).copy()
    F_back_T[:, 2, 0] = F_back_T[:, 3, 1] = -lag
    P_xb = (P - Q) @ F_back_T
    return x_b, P_b, P_xb


def update_out_of_sequence(
    x: np.ndarray,
    P: np.ndarray,
    x_b: np.ndarray,
    P_b: np.ndarray,
    P_xb: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse a measurement taken before the current state time (see :func:`retrodict`).

    ``S = H P_b H' + R``, ``K = P_xb H' S^-1``, ``x = x + K (z - H x_b)``,
    ``P = P - K S K'``.

    Parameters
    ----------
    x, P : ndarray, shapes (N, 4), (N, 4, 4)
        Current states and covariances.
    x_b, P_b, P_xb : ndarray, shapes (N, 4), (N, 4, 4), (N, 4, 4)
        From :func:`retrodict`.
    z : ndarray, shape (N, 2)
    R : ndarray, shape (N, 2, 2)

    Returns
    -------
    x_post : ndarray, shape (N, 4)
    P_post : ndarray, shape (N, 4, 4)
    """
    y = z - x_b[:, :2]
    S = P_b[:, :2, :2] + R
    S_inv, _ = inv2(S)
    K = P_xb[:, :, :2] @ S_inv
    x_post = x + (K @ y[:, :, None])[:, :, 0]
    P_post = P - K @ S @ K.transpose(0, 2, 1)
    return x_post, 0.5 * (P_post + P_post.transpose(0, 2, 1))
