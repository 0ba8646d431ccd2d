"""Which tracks a sensor could have seen: point-in-polygon and depth inside a footprint."""

from __future__ import annotations

import numpy as np
import shapely


def _bounding_box(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the points inside the polygon's bounding box (four comparisons each).

    A drone footprint is small against a wide track picture, so this discards nearly
    every point before the exact test.
    """
    lo = polygon.min(axis=0)
    hi = polygon.max(axis=0)
    x, y = points[:, 0], points[:, 1]
    return np.flatnonzero((x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]))


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside one simple polygon.

    A bounding-box test first, then ``shapely.contains_xy`` (GEOS, prepared) on the
    points left; points exactly on an edge count as outside, which is harmless for
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
    candidates = _bounding_box(points, polygon)
    if candidates.size == 0:
        return inside
    shape = shapely.Polygon(polygon)
    if candidates.size > 16:
        shapely.prepare(shape)  # pays for itself beyond a handful of points
    inside[candidates] = shapely.contains_xy(
        shape, points[candidates, 0], points[candidates, 1]
    )
    return inside


def depth_inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance from each point (assumed inside) to the polygon's boundary, metres.

    Parameters
    ----------
    points : ndarray, shape (N, 2)
    polygon : ndarray, shape (K, 2)

    Returns
    -------
    depth : ndarray, shape (N,)
    """
    if points.shape[0] == 0:
        return np.empty(0)
    ring = shapely.LinearRing(polygon)
    return shapely.distance(ring, shapely.points(points))
