"""P(inside) of a Gaussian position near a polygon boundary: the half-plane approximation.

For a track at ``p`` with position covariance ``P``, let ``q`` be the nearest point of
the zone boundary, ``d = |p - q|`` signed positive inside and negative outside, and
``n = (p - q) / |p - q|`` the boundary normal through ``p``. Treating the boundary near
``q`` as a straight line (a half-plane), the position error along ``n`` is normal with
variance ``sigma^2 = n' P n``, so

    P(inside) = Phi(d / sigma)

This is exact for a straight edge and a Gaussian position, and its error grows where
the boundary bends within a few sigma of the track: it over-estimates near a convex
corner (the inside is a wedge, smaller than the half-plane) and in a zone narrower than
a few sigma, and under-estimates near a reflex corner. Tracks more than
:data:`FAR_SIGMAS` standard deviations from the zone's bounding box are given 0 without
a distance computation.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

__all__ = [
    "FAR_SIGMAS",
    "box_distance",
    "halfplane_probability",
    "halfplane_probability_along",
    "halfplane_probability_near",
    "position_sigma_bound",
]

# Phi(-8) ~ 6e-16: beyond this many sigma a track's probability is exactly 0 or 1.
FAR_SIGMAS = 8.0


def position_sigma_bound(P_pos: np.ndarray) -> np.ndarray:
    """``sqrt(trace P)``, an upper bound on the position standard deviation in any direction.

    Parameters
    ----------
    P_pos : ndarray, shape (N, 2, 2)

    Returns
    -------
    ndarray, shape (N,)
    """
    return np.sqrt(np.maximum(P_pos[:, 0, 0] + P_pos[:, 1, 1], 0.0))


def box_distance(pos: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Distance from each point to an axis-aligned box (0 inside it).

    Parameters
    ----------
    pos : ndarray, shape (N, 2)
    bounds : ndarray, shape (4,)
        ``x0, y0, x1, y1``.

    Returns
    -------
    ndarray, shape (N,)
        A lower bound on the distance to anything inside the box.
    """
    x0, y0, x1, y1 = bounds.tolist()
    east, north = pos[:, 0], pos[:, 1]
    # Column by column: (N, 2)-shaped arithmetic runs numpy's inner loop two wide.
    dx = np.maximum(x0 - east, east - x1)
    dy = np.maximum(y0 - north, north - y1)
    np.maximum(dx, 0.0, out=dx)
    np.maximum(dy, 0.0, out=dy)
    # hypot(d, 0) is exactly d, and most points are beside the box rather than off a
    # corner of it, so hypot (costly per element) runs only where both are non-zero.
    box = dx + dy
    corner = (np.minimum(dx, dy) > 0).nonzero()[0]
    if corner.size:
        box[corner] = np.hypot(dx[corner], dy[corner])
    return box


def halfplane_probability(
    pos: np.ndarray, q: np.ndarray, d: np.ndarray, inside: np.ndarray, P_pos: np.ndarray
) -> np.ndarray:
    """``Phi(s / sigma)`` with ``s`` the signed distance and ``sigma^2 = n' P n``.

    Parameters
    ----------
    pos : ndarray, shape (M, 2)
        Position estimates, metres.
    q : ndarray, shape (M, 2)
        The nearest boundary point of each.
    d : ndarray, shape (M,)
        ``|pos - q|``.
    inside : ndarray, shape (M,), bool
        Whether each position is inside the zone.
    P_pos : ndarray, shape (M, 2, 2)
        Position covariances, m^2.

    Returns
    -------
    ndarray, shape (M,), float64 in [0, 1]
    """
    diff = pos - q
    n = np.divide(diff, d[:, None], out=np.zeros_like(diff), where=d[:, None] > 0)
    return halfplane_probability_along(n, d, inside, P_pos)


def halfplane_probability_near(
    n: np.ndarray,
    d: np.ndarray,
    inside: np.ndarray,
    P_pos: np.ndarray,
    box: np.ndarray,
    sigma: np.ndarray,
) -> np.ndarray:
    """:func:`halfplane_probability_along` where the bounding-box distance ``box`` (M,) is
    within ``FAR_SIGMAS`` of :func:`position_sigma_bound` ``sigma`` (M,); 0 beyond."""
    p = np.zeros(d.shape[0])
    close = (box <= FAR_SIGMAS * sigma).nonzero()[0]
    p[close] = halfplane_probability_along(n[close], d[close], inside[close], P_pos[close])
    return p


def halfplane_probability_along(
    n: np.ndarray, d: np.ndarray, inside: np.ndarray, P_pos: np.ndarray
) -> np.ndarray:
    """:func:`halfplane_probability` given the unit normals ``n`` (M, 2) already: ``(pos -
    q) / d``, 0 where ``d`` is 0 (:meth:`fusion.alerting.zones.Zone.measure` has them)."""
    # sigma^2 = n' P n
    var = (
        n[:, 0] * n[:, 0] * P_pos[:, 0, 0]
        + n[:, 0] * n[:, 1] * (P_pos[:, 0, 1] + P_pos[:, 1, 0])
        + n[:, 1] * n[:, 1] * P_pos[:, 1, 1]
    )
    s = np.where(inside, d, -d)
    # A degenerate variance along n means the point estimate decides; on the
    # boundary itself (d == 0) the half-plane gives exactly one half.
    positive = var > 0
    z = np.where(s > 0, np.inf, -np.inf)
    np.divide(s, np.sqrt(np.maximum(var, 0.0)), out=z, where=positive)
    z = np.where(d > 0, z, 0.0)
    return ndtr(z)
