r"""Interacting multiple model (IMM) kernels, batch-last and vectorised over tracks.

Each track runs ``J`` constant-velocity filters that differ only in their white
acceleration noise (a quiet mode for walking, driving and cruising straight, and a
manoeuvring one for turns, stops and starts), with mode probabilities ``mu`` and a
Markov switching matrix ``M`` (``M[i, j]`` = P(mode j next | mode i now)). One cycle
(Bar-Shalom, Li, Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, sec. 11.6.6; Labbe, *Kalman and Bayesian Filters in Python*, ch. 14):

.. math::

    \bar c_j = \sum_i M_{ij} \mu_i, \qquad
    \omega_{ij} = M_{ij} \mu_i / \bar c_j                                  \\
    x^0_j = \sum_i \omega_{ij} x_i, \qquad
    P^0_j = \sum_i \omega_{ij} [P_i + (x_i - x^0_j)(x_i - x^0_j)']          \\
    x_j, P_j \leftarrow \text{predict}(x^0_j, P^0_j; Q_j), \text{ then update with } z \\
    \mu_j \propto \bar c_j \, \mathcal N(y_j; 0, S_j), \qquad
    x = \sum_j \mu_j x_j, \quad P = \sum_j \mu_j [P_j + (x_j - x)(x_j - x)']

The numerics match ``filterpy.kalman.IMMEstimator`` over ``KalmanFilter`` modes (tests
hold them to 1e-9). Layout as in ``fusion.tracking.kalman``: the track index is the
last axis, modes the first: ``x`` (J, 4, N), ``P`` (J, 4, 4, N), ``mu`` (J, N). Mode
arrays are returned as mode-first views of (4, J, N) and (4, 4, J, N) memory, the
layout the kernels run on and the track table stores (see :func:`batch_last`).
"""

from __future__ import annotations

import numpy as np

from fusion.tracking import kalman

TINY = np.finfo(float).tiny  # the floor of a likelihood, as in filterpy


def switching_matrix(dt: np.ndarray, sojourn: np.ndarray) -> np.ndarray:
    """Mode transition probabilities over ``dt`` seconds, shape (J, J, N).

    Mode ``i`` is kept with probability ``exp(-|dt| / sojourn_i)`` (a mean stay of
    ``sojourn_i`` seconds, whatever the batch rate); the rest is shared equally by the
    other modes. At ``dt = 0`` (several sensors at one instant) nothing switches.

    Parameters
    ----------
    dt : ndarray, shape (N,)
    sojourn : ndarray, shape (J,)
        Mean time spent in each mode, seconds.
    """
    J = sojourn.shape[0]
    stay = np.exp(-np.abs(dt)[None, :] / sojourn[:, None])  # (J, N)
    if J == 1:
        return np.ones((1, 1, dt.shape[0]))
    M = np.repeat(((1.0 - stay) / (J - 1))[:, None, :], J, axis=1)
    M[np.arange(J), np.arange(J)] = stay
    return M


def mix(mu: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mode probabilities ``cbar`` (J, N) and mixing weights ``omega`` (J, J, N).

    Parameters
    ----------
    mu : ndarray, shape (J, N)
    M : ndarray, shape (J, J, N) or (J, J)
    """
    if M.ndim == 2:
        M = M[:, :, None]
    weighted = M * mu[:, None, :]  # M_ij mu_i
    cbar = weighted.sum(axis=0)  # cbar_j = sum_i M_ij mu_i
    return cbar, weighted / cbar[None, :, :]  # omega_ij = M_ij mu_i / cbar_j


def batch_last(a: np.ndarray) -> np.ndarray:
    """Modes ``a`` (J, ..., N) viewed as (..., J, N), the batch shape last.

    The kernels of ``fusion.tracking.kalman`` run on every mode at once with batch
    shape (J, N). This module returns mode-first views of (..., J, N) memory, and the
    track table stores its mode columns so (``fusion.tracking.track_table``): there this
    view is that memory again, with the track axis contiguous, and costs nothing.
    """
    n = a.ndim  # np.moveaxis(a, 0, -2), without its 2 us of argument checking
    return a.transpose((*range(1, n - 1), 0, n - 1))


def mode_first(a: np.ndarray) -> np.ndarray:
    """The inverse of :func:`batch_last`: (..., J, N) viewed as (J, ..., N)."""
    n = a.ndim  # np.moveaxis(a, -2, 0)
    return a.transpose((n - 2, *range(n - 2), n - 1))


def kernel_layout(a: np.ndarray) -> np.ndarray:
    """Modes ``a`` (J, ..., N) as a C-contiguous (..., J, N) array (a copy if need be)."""
    return np.ascontiguousarray(batch_last(a))


def _spread(x: np.ndarray, P: np.ndarray, centre: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_i w_i [P_i + (x_i - c)(x_i - c)']`` with x (J, 4, N), centre (4, N), w (J, N)."""
    d = x - centre[None]  # (J, 4, N)
    out = w[0] * (P[0] + d[0][:, None] * d[0][None, :])
    for i in range(1, x.shape[0]):  # the modes (two), not the tracks
        out += w[i] * (P[i] + d[i][:, None] * d[i][None, :])
    return out


def _outer_difference(x: np.ndarray) -> np.ndarray | None:
    """``(x_0 - x_1)(x_0 - x_1)'`` (4, 4, N) for two modes, None otherwise.

    With two modes, ``sum_i w_i (x_i - c)(x_i - c)' = w_0 w_1 (x_0 - x_1)(x_0 - x_1)'``
    for the weighted mean ``c``: one outer product serves every moment match of a cycle.
    """
    if x.shape[0] != 2:
        return None
    d = x[0] - x[1]
    return d[:, None] * d[None, :]


def _match(P: np.ndarray, w: np.ndarray, dd: np.ndarray) -> np.ndarray:
    """``w_0 P_0 + w_1 P_1 + w_0 w_1 dd`` for two modes, shape (4, 4, N)."""
    out = w[0] * P[0]
    out += w[1] * P[1]
    out += (w[0] * w[1]) * dd
    return out


def mixed_initial(
    x: np.ndarray, P: np.ndarray, omega: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mode-matched starting points ``x0`` (J, 4, N), ``P0`` (J, 4, 4, N).

    Parameters
    ----------
    x : ndarray, shape (J, 4, N)
    P : ndarray, shape (J, 4, 4, N)
    omega : ndarray, shape (J, J, N)
        Mixing weights from :func:`mix`.
    """
    dd = _outer_difference(x)
    if dd is None:
        x0 = np.einsum("ijn,ian->jan", omega, x)  # x0_j = sum_i omega_ij x_i
        P0 = [_spread(x, P, x0[j], omega[:, j]) for j in range(x.shape[0])]  # J modes
        return x0, np.stack(P0)
    # Two modes: every target mode j at once, w_i = omega[i] (J, N) broadcast against
    # mode i's (4, N) and (4, 4, N); the same products and sums, in the same order, as
    # one _match per target mode. The results are laid out (4, J, N) and (4, 4, J, N)
    # in memory, as the kernels want them (see batch_last), and returned as views.
    w0, w1 = omega[0], omega[1]
    x0 = w0 * x[0][:, None]
    x0 += w1 * x[1][:, None]
    P0 = w0 * P[0][:, :, None]
    P0 += w1 * P[1][:, :, None]
    P0 += (w0 * w1) * dd[:, :, None]
    return mode_first(x0), mode_first(P0)


def combine(x: np.ndarray, P: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moment-matched single Gaussian: ``x`` (4, N), ``P`` (4, 4, N) from weights ``w`` (J, N)."""
    x_c = w[0] * x[0]
    for i in range(1, x.shape[0]):
        x_c += w[i] * x[i]
    dd = _outer_difference(x)
    return x_c, (_spread(x, P, x_c, w) if dd is None else _match(P, w, dd))


def combine_position(
    x: np.ndarray, P: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`combine`'s state ``x`` (4, N) and the position block (2, 2, N) of its ``P``.

    What gating needs of a prediction, for a quarter of the covariance work; the same
    operations on the same entries, so the same bits as ``combine(...)[1][:2, :2]``.
    """
    x_c = w[0] * x[0]
    for i in range(1, x.shape[0]):
        x_c += w[i] * x[i]
    position, P_pos = x[:, :2], P[:, :2, :2]
    dd = _outer_difference(position)
    return x_c, (_spread(position, P_pos, x_c[:2], w) if dd is None else _match(P_pos, w, dd))


def predict(
    x: np.ndarray,
    P: np.ndarray,
    mu: np.ndarray,
    M: np.ndarray,
    dt: np.ndarray,
    accel_vars: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix and predict every mode ``dt`` seconds ahead.

    Parameters
    ----------
    x : ndarray, shape (J, 4, N)
    P : ndarray, shape (J, 4, 4, N)
    mu : ndarray, shape (J, N)
    M : ndarray, shape (J, J, N) or (J, J)
    dt : ndarray, shape (N,)
    accel_vars : ndarray, shape (J,)
        White acceleration noise variance of each mode.

    Returns
    -------
    x_pred : ndarray, shape (J, 4, N)
    P_pred : ndarray, shape (J, 4, 4, N)
    cbar : ndarray, shape (J, N)
        Predicted mode probabilities (the weights of the combined prediction).
    """
    cbar, omega = mix(mu, M)
    x0, P0 = mixed_initial(x, P, omega)
    # One kernel call for every mode: the kernel sees batch shape (J, N) on views with
    # the matrix axes first, and each mode gets its own noise through (J, 1).
    x_pred, P_pred = kalman.predict_batch_last(
        batch_last(x0), batch_last(P0), dt, accel_vars[:, None]
    )
    return mode_first(x_pred), mode_first(P_pred), cbar


def update(
    x: np.ndarray, P: np.ndarray, cbar: np.ndarray, z: np.ndarray, R: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Update every mode with its track's detection; returns ``x``, ``P``, ``mu``.

    Parameters
    ----------
    x : ndarray, shape (J, 4, N)
    P : ndarray, shape (J, 4, 4, N)
        Predicted modes.
    cbar : ndarray, shape (J, N)
        Predicted mode probabilities.
    z : ndarray, shape (2, N)
    R : ndarray, shape (2, 2, N)

    Returns
    -------
    x_post : ndarray, shape (J, 4, N)
    P_post : ndarray, shape (J, 4, 4, N)
    mu : ndarray, shape (J, N)
    """
    # One kernel call for every mode (batch shape (J, N)); z and R broadcast over J. It
    # also gives each mode's likelihood L_j = N(y_j; 0, S_j) from the S it inverts.
    L = np.empty_like(cbar)
    x_post, P_post = kalman.update_batch_last(
        batch_last(x), batch_last(P), z[:, None], R[:, :, None], likelihood=L
    )
    # mu_j ∝ cbar_j L_j; a likelihood that underflows is floored (as filterpy does)
    np.maximum(L, TINY, out=L)
    mu = cbar * L
    mu /= mu.sum(axis=0)
    return mode_first(x_post), mode_first(P_post), mu
