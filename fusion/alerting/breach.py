r"""Probability that a track breaches a zone within a horizon, from its state and covariance.

A straight-line path says *whether* the estimate heads into the zone; an operator needs
*how likely* the target is to be inside by then. Across the nearest stretch of
boundary the zone is a half-plane (the approximation :mod:`fusion.alerting.probability`
makes for P(inside)); with ``n`` the unit normal from the boundary point ``q`` towards
the track, the track's margin outside the zone after ``tau`` seconds of constant
velocity plus white acceleration noise is Gaussian,

.. math::

    m(\tau) = n'(p - q) + \tau\, n' v, \qquad
    \sigma^2(\tau) = n' [P_{pp} + \tau (P_{pv} + P_{vp}) + \tau^2 P_{vv}] n
                     + q_a \tau^4 / 4,

and the breach probability by the horizon ``H`` is ``Phi(-m(H) / sigma(H))``: for
straight-line motion the margin is monotone in ``tau``, so being across the line at
``H`` is being across it at some time before. With an IMM (modes of acceleration
noise ``q_j`` and probabilities ``mu_j``) the answer is the mixture
``sum_j mu_j Phi(-m(H) / sigma_j(H))``: a quiet track's prediction holds over a minute,
a manoeuvring one's spreads within seconds, and the mode probabilities say how far to
trust each.

References: Bar-Shalom, Li, Kirubarajan (2001), sec. 6.3 (the CV prediction) and 11.6
(IMM mixtures); the half-plane probability as in ``fusion.alerting.probability``.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.special import ndtr


def gap_and_normal(polygon: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance outside a polygon and the unit normal from its nearest boundary point.

    Parameters
    ----------
    polygon : ndarray, shape (K, 2)
        Zone vertices (local metres).
    points : ndarray, shape (N, 2)

    Returns
    -------
    gap : ndarray, shape (N,)
        Distance to the boundary, negative inside.
    normal : ndarray, shape (N, 2)
        Unit vector from the nearest boundary point towards the point (outward for
        points outside); for points inside, pointing out of the zone through the nearest
        edge.
    """
    zone = shapely.Polygon(polygon)
    pts = shapely.points(points)
    boundary = zone.exterior
    nearest = shapely.get_coordinates(shapely.shortest_line(boundary, pts)).reshape(-1, 2, 2)
    q = nearest[:, 0]
    offset = points - q
    dist = np.hypot(offset[:, 0], offset[:, 1])
    inside = shapely.contains_xy(zone, points[:, 0], points[:, 1])
    normal = np.divide(offset, dist[:, None], out=np.zeros_like(offset), where=dist[:, None] > 0)
    normal[inside] *= -1.0  # inside, the way out is away from the point's side
    return np.where(inside, -dist, dist), normal


def breach_probability(
    gap: np.ndarray,
    normal: np.ndarray,
    x: np.ndarray,
    P: np.ndarray,
    horizon: float | np.ndarray,
    accel_vars: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Probability that each track is across the boundary ``horizon`` seconds from now.

    Parameters
    ----------
    gap : ndarray, shape (N,)
        Distance outside the zone (<= 0: already inside, probability 1).
    normal : ndarray, shape (N, 2)
        Unit normal from the nearest boundary point towards the track.
    x : ndarray, shape (N, 4)
        east, north, v_east, v_north.
    P : ndarray, shape (N, 4, 4)
    horizon : float or ndarray, shape (N,)
        Look-ahead ``H``, seconds.
    accel_vars : ndarray, shape (J,)
        White acceleration noise variance of each motion mode, (m/s^2)^2.
    weights : ndarray, shape (J, N), optional
        Mode probabilities (default: equal).

    Returns
    -------
    p : ndarray, shape (N,), in [0, 1]
    """
    H = np.broadcast_to(np.asarray(horizon, dtype=float), gap.shape)
    n0, n1 = normal[:, 0], normal[:, 1]

    def along(block: np.ndarray) -> np.ndarray:  # n' B n for 2x2 blocks B (N, 2, 2)
        return n0 * n0 * block[:, 0, 0] + n0 * n1 * (block[:, 0, 1] + block[:, 1, 0]) \
            + n1 * n1 * block[:, 1, 1]

    margin = gap + H * (n0 * x[:, 2] + n1 * x[:, 3])  # m(H) = n'(p - q) + H n'v
    var = along(P[:, :2, :2]) + H * along(P[:, :2, 2:] + P[:, 2:, :2].transpose(0, 2, 1)) \
        + H * H * along(P[:, 2:, 2:])
    J = accel_vars.shape[0]
    w = np.full((J, gap.shape[0]), 1.0 / J) if weights is None else weights
    p = np.zeros(gap.shape[0])
    for j in range(J):  # the motion modes (two), not the tracks
        sigma = np.sqrt(np.maximum(var + accel_vars[j] * H**4 / 4.0, 1e-12))
        p += w[j] * ndtr(-margin / sigma)
    return np.where(gap <= 0.0, 1.0, np.clip(p, 0.0, 1.0))
