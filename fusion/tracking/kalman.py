"""Batched Kalman kernels for the nearly-constant-velocity model in two dimensions.

Pure functions over many independent filters. State is
``x = [east, north, v_east, v_north]``; a measurement is a position, so
``H = [I 0]``. The numerics follow ``filterpy.kalman.KalmanFilter`` (the reference
oracle in the tests): same ``Q`` as ``filterpy.common.Q_discrete_white_noise(dim=2,
block_size=2, order_by_dim=False)`` and the Joseph-form covariance update (evaluated
two ways, see :func:`update_batch_last`).

Two layouts of the same maths:

* the public functions (:func:`predict`, :func:`update`, ...) take the usual
  batch-first arrays, ``x`` (N, 4) and ``P`` (N, 4, 4);
* the hot-path kernels :func:`predict_batch_last` and :func:`update_batch_last` take
  batch-last arrays, ``x`` (4, N) and ``P`` (4, 4, N), which is how the track table
  stores them. There every matrix entry ``P[i, j]`` is one contiguous (N,) vector, so
  each numpy call loops over the N filters. Batch-first, a blockwise expression on
  (N, 2, 2) sub-blocks runs inner loops two elements long and is several times
  slower; general (N, 4, 4) matmuls are slower still.

The batch-last kernels accept any batch shape after the matrix axes, e.g. ``x``
(4, J, N) and ``P`` (4, 4, J, N) for the J modes of an IMM at once
(``fusion.tracking.imm``): one call per cycle instead of one per mode, with the same
arithmetic on every element, so the results are bit for bit those of J calls.

The covariance algebra is written on 2x2 blocks ``P = [[A, B], [B', C]]`` (position,
position-velocity, velocity) because ``F`` and ``H`` are sparse: a blockwise product
costs a handful of vectorised multiply-adds, where a general ``F @ P @ F.T`` costs
several batched matmuls.

References: Bar-Shalom, Li, Kirubarajan, *Estimation with Applications to Tracking and
Navigation* (2001), sec. 6.3 (DWNA model) and 5.2; Labbe, *Kalman and Bayesian Filters
in Python*, ch. 6-7.
"""

from __future__ import annotations

import numpy as np

# The update kernel lives in its own module; importable from here as before.
from fusion.tracking.kalman_update import (  # noqa: F401
    SHRINK_LIMIT,
    UPDATE_BLOCK,
    update,
    update_batch_last,
)


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
    Batch-first front end of :func:`predict_batch_last`.

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
    x_pred, P_pred = predict_batch_last(x.T, P.transpose(1, 2, 0), dt, accel_var)
    return np.ascontiguousarray(x_pred.T), np.ascontiguousarray(P_pred.transpose(2, 0, 1))


def predict_batch_last(
    x: np.ndarray, P: np.ndarray, dt: np.ndarray, accel_var: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predict` on batch-last arrays: ``x' = F x``, ``P' = F P F' + Q``.

    Parameters
    ----------
    x : ndarray, shape (4, *B)
        ``B`` is the batch shape, usually (N,); (J, N) for the modes of an IMM.
    P : ndarray, shape (4, 4, *B)
    dt : ndarray, broadcastable to B
        Per-filter interval in seconds; a negative value predicts backwards.
    accel_var : float or ndarray broadcastable to B
        White acceleration noise variance, (m/s^2)^2 (per mode: shape (J, 1)).

    Returns
    -------
    x_pred : ndarray, shape (4, *B)
    P_pred : ndarray, shape (4, 4, *B)
        New arrays laid out in memory like the inputs; the inputs are not modified.
    """
    dt = np.asarray(dt, dtype=float)
    x_pred = x.copy(order="K")
    x_pred[:2] += dt * x[2:]  # position += dt * velocity

    # F P F' on blocks, F = [[I, dt I], [0, I]]:
    # [[A + dt (B + B') + dt^2 C, B + dt C], [(B + dt C)', C]]
    # and A + dt (B + B') + dt^2 C = A + dt (B' + (B + dt C)).
    A, B, C = P[:2, :2], P[:2, 2:], P[2:, 2:]
    BC = dt * C
    BC += B  # B + dt C
    P_pred = np.empty_like(P)
    top_left = BC + B.swapaxes(0, 1)
    top_left *= dt
    top_left += A
    P_pred[:2, :2] = top_left
    P_pred[:2, 2:] = BC
    P_pred[2:, :2] = BC.swapaxes(0, 1)
    P_pred[2:, 2:] = C
    # + Q: sigma_a^2 [[dt^4/4 I, dt^3/2 I], [dt^3/2 I, dt^2 I]] (|dt| when retrodicting)
    q_vv = accel_var * dt * dt
    q_pv = 0.5 * np.abs(dt) * q_vv
    q_pp = 0.25 * dt * dt * q_vv
    for i in (0, 1):  # the two axes: Q only touches the diagonals of its blocks
        P_pred[i, i] += q_pp
        P_pred[i, i + 2] += q_pv
        P_pred[i + 2, i] += q_pv
        P_pred[i + 2, i + 2] += q_vv
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


def retrodict(
    x: np.ndarray, P: np.ndarray, lag: np.ndarray, accel_var: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrodict current states to an earlier measurement time, for out-of-sequence updates.

    A one-lag retrodiction in the spirit of Bar-Shalom's algorithm B ("Update with
    out-of-sequence measurements in tracking: exact solution", IEEE T-AES 38(3), 2002):
    the state at ``t_k - lag`` is ``x_b = F(-lag) x``, its covariance
    ``P_b = F(-lag) (P + Q(lag)) F(-lag)'`` and the cross-covariance of the current
    state with it ``P_xb = P F(-lag)'``.

    The exact cross-covariance subtracts ``cov(x_k, w)``, the part of the process noise
    ``w`` over the lag that the current state already carries. Without the innovations
    of the updates in between (which we do not keep) that term is unknown, and the
    common stand-in ``Q(lag)`` breaks positive-definiteness whenever updates have
    shrunk ``P`` below ``Q(lag)`` (a satellite pass minutes late). Taking it as zero
    keeps the joint covariance of ``(x_k, z)`` valid, so ``P - K S K'`` is always
    positive-definite; the price is a slightly too trusting weight on old data.

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
    P_xb = P @ F_back_T
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
