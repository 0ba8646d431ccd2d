"""Small planar geometry on the hot path: which points lie inside a sensor's coverage."""

from __future__ import annotations

import numpy as np


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd (crossing number) test of many points against one simple polygon.

    Vectorised over points and edges; a bounding-box test first discards the points
    that cannot be inside, so a small drone footprint over a wide track picture costs
    little. Points exactly on an edge may fall either way, which is harmless for
    coverage (a sensor's footprint edge is not that sharp).

    Parameters
    ----------
    points : ndarray, shape (N, 2)
    polygon : ndarray, shape (K, 2)
        Vertices in order (either winding), not repeated at the end.

    Returns
    -------
    inside : ndarray, shape (N,), bool
    """
    inside = np.zeros(points.shape[0], dtype=bool)
    lo = polygon.min(axis=0)
    hi = polygon.max(axis=0)
    candidates = np.flatnonzero(
        (points[:, 0] >= lo[0])
        & (points[:, 0] <= hi[0])
        & (points[:, 1] >= lo[1])
        & (points[:, 1] <= hi[1])
    )
    if candidates.size == 0:
        return inside
    px = points[candidates, 0:1]  # (C, 1) against (1, K) edges
    py = points[candidates, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    # the edge from vertex k to vertex k+1, wrapping round (np.roll costs ~40 us here)
    x1 = np.concatenate((x0[1:], x0[:1]))
    y1 = np.concatenate((y0[1:], y0[:1]))
    straddles = (y0 > py) != (y1 > py)
    # Only straddling edges need the crossing abscissa; they never have y1 == y0.
    fraction = np.divide(py - y0, y1 - y0, out=np.zeros(straddles.shape), where=straddles)
    x_cross = x0 + fraction * (x1 - x0)
    crossings = np.count_nonzero(straddles & (px < x_cross), axis=1)
    inside[candidates] = (crossings % 2) == 1
    return inside
