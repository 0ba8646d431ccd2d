"""Which tracks a sensor could have seen: point-in-polygon and depth inside a footprint.

A sensor sends the same footprint batch after batch (a radar's sector, a fixed
camera's view), so each polygon's shapely geometry, boundary and bounding box are
kept, keyed by the polygon's bytes, in a small bounded cache: building and preparing
them cost more than the test itself for a small batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

# Footprints remembered (a few hundred bytes each, plus GEOS's prepared index); the
# oldest is dropped beyond this, so a drone whose footprint moves every frame cannot
# grow the cache.
MAX_CACHED = 256
# Prepare a polygon (GEOS builds an index of its edges) once this many points need the
# exact test; below it the plain test is cheaper than the preparation.
PREPARE_AFTER = 16


@dataclass
class _Footprint:
    shape: shapely.Polygon
    ring: shapely.LinearRing
    lo: np.ndarray  # (2,) bounding box corners
    hi: np.ndarray
    area: float  # m^2
    box: bool = False  # an axis-aligned rectangle: the bounding box is the whole test
    prepared: bool = False


def _is_box(polygon: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether ``polygon`` (K, 2) is the axis-aligned rectangle ``lo``-``hi``: four
    distinct corners of it, each edge along an axis (either winding)."""
    if polygon.shape[0] != 4 or not (lo < hi).all():
        return False
    corners = {(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])}
    along_axis = np.count_nonzero(polygon == np.roll(polygon, -1, axis=0), axis=1) == 1
    return {(a, b) for a, b in polygon.tolist()} == corners and bool(along_axis.all())


_cache: dict[bytes, _Footprint] = {}


def _footprint(polygon: np.ndarray) -> _Footprint:
    """The cached geometry of ``polygon`` (K, 2), built on first sight."""
    polygon = np.ascontiguousarray(polygon, dtype=float)
    key = polygon.tobytes()
    found = _cache.get(key)
    if found is None:
        shape = shapely.Polygon(polygon)
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        found = _Footprint(
            shape, shape.exterior, lo, hi, float(shape.area), _is_box(polygon, lo, hi)
        )
        if len(_cache) >= MAX_CACHED:
            del _cache[next(iter(_cache))]  # insertion order: the oldest first
        _cache[key] = found
    return found


def polygon_area(polygon: np.ndarray) -> float:
    """Area of one simple polygon (K, 2), m^2 (cached with its geometry)."""
    return _footprint(polygon).area


def rows_in_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the points ``(x[i], y[i])`` inside one simple polygon, ascending.

    A bounding-box test first (four comparisons a point: a drone footprint is small
    against a wide track picture, so this discards nearly every point), then
    ``shapely.contains_xy`` on the points left (none needed for an axis-aligned
    rectangle); points exactly on an edge count as outside, which is harmless for
    coverage (a sensor's footprint edge is not that sharp).

    Parameters
    ----------
    x, y : ndarray, shape (N,)
    polygon : ndarray, shape (K, 2)
        Vertices in order (either winding), not repeated at the end.

    Returns
    -------
    rows : ndarray, intp
    """
    f = _footprint(polygon)
    if f.box:
        # A rectangular footprint (a drone camera's, often) is its own bounding box:
        # strict comparisons give shapely's answer, edge points outside, without the
        # shapely call, a tenth of a small frame's coverage test.
        return ((x > f.lo[0]) & (x < f.hi[0]) & (y > f.lo[1]) & (y < f.hi[1])).nonzero()[0]
    rows = ((x >= f.lo[0]) & (x <= f.hi[0]) & (y >= f.lo[1]) & (y <= f.hi[1])).nonzero()[0]
    if rows.size == 0:
        return rows
    if rows.size > PREPARE_AFTER and not f.prepared:
        shapely.prepare(f.shape)
        f.prepared = True
    return rows[shapely.contains_xy(f.shape, x[rows], y[rows])]


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside one simple polygon (see :func:`rows_in_polygon`).

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
    inside[rows_in_polygon(points[:, 0], points[:, 1], polygon)] = True
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
    return shapely.distance(_footprint(polygon).ring, shapely.points(points))
