"""Polygon geometry as numpy edge arithmetic: no shapely call per point.

A zone boundary is held as an edge table ``(E, 4)`` with rows ``ax, ay, bx, by`` (every
ring: exteriors and holes). The alert engine asks the same few questions of a few
hundred track positions at every step; each is answered here for all points against all
edges at once, in chunks that bound the ``(M, E)`` temporaries:

* :func:`nearest_on_edges` -- the nearest boundary point and its distance;
* :func:`inside` -- strictly inside, by the even-odd crossing rule (holes and the parts
  of a multipolygon come out right without knowing which ring is which);
* :func:`first_crossing` -- where a straight path first meets the boundary;
* :func:`split_ring` -- the one-off cut of a ring into a zone's two sides.

Shapely builds and validates the polygon once; the per-step maths stays in numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

__all__ = [
    "chain_edges",
    "first_crossing",
    "inside",
    "nearest_on_edges",
    "nearest_with_others",
    "ring_edges",
    "split_ring",
]

# Point x edge pairs per chunk (bounds the temporaries to a few MB).
_CHUNK = 1 << 18


def ring_edges(geometry: Any) -> np.ndarray:
    """Every boundary edge (exterior rings and holes) as rows ``ax, ay, bx, by``, (E, 4)."""
    polygons = geometry.geoms if isinstance(geometry, shapely.MultiPolygon) else [geometry]
    rings = [r for p in polygons for r in (p.exterior, *p.interiors)]
    parts = []
    for ring in rings:  # a handful of rings, once per zone
        xy = np.asarray(ring.coords, dtype=float)
        parts.append(np.hstack([xy[:-1], xy[1:]]))
    return np.vstack(parts)


def chain_edges(chain: np.ndarray) -> np.ndarray:
    """An open polyline ``(K, 2)`` as its ``K - 1`` edges, (K - 1, 4)."""
    return np.hstack([chain[:-1], chain[1:]])


def _chunks(m: int, e: int) -> list[slice]:
    """Slices of ``m`` points, each small enough that points x ``e`` edges fit a chunk."""
    step = max(1, _CHUNK // max(e, 1))
    return [slice(lo, min(lo + step, m)) for lo in range(0, m, step)]


def _project(px: np.ndarray, py: np.ndarray, edges: np.ndarray):
    """Squared distance (M, E) from points to edges, and the nearest points (M, E) x 2."""
    ax, ay = edges[:, 0], edges[:, 1]
    ex, ey = edges[:, 2] - ax, edges[:, 3] - ay
    ee = ex * ex + ey * ey
    inv = np.divide(1.0, ee, out=np.zeros_like(ee), where=ee > 0)
    # u = clamp((p - a) . e / |e|^2, 0, 1): where the perpendicular from p lands
    u = np.minimum(np.maximum(((px - ax) * ex + (py - ay) * ey) * inv, 0.0), 1.0)
    qx, qy = ax + u * ex, ay + u * ey
    return (px - qx) ** 2 + (py - qy) ** 2, qx, qy


def nearest_on_edges(points: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point to the nearest edge, and the nearest point on it.

    Projects ``p`` on each edge ``a + u (b - a)``, clamping ``u`` to [0, 1].

    Parameters
    ----------
    points : ndarray, shape (M, 2)
    edges : ndarray, shape (E, 4)
        ``ax, ay, bx, by`` per edge.

    Returns
    -------
    d : ndarray, shape (M,)
        Euclidean distance to the boundary, metres.
    q : ndarray, shape (M, 2)
        The nearest boundary point.
    """
    d, q, _ = nearest_with_others(points, edges, ())
    return d, q


def nearest_with_others(
    points: np.ndarray, edges: np.ndarray, others: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """:func:`nearest_on_edges`, plus the distance to further edge sets in the same pass.

    Parameters
    ----------
    points : ndarray, shape (M, 2)
    edges : ndarray, shape (E, 4)
    others : tuple of ndarray, shape (E_j, 4)
        Further edge sets (a zone's side chains).

    Returns
    -------
    d : ndarray, shape (M,)
    q : ndarray, shape (M, 2)
    d_others : list of ndarray, shape (M,)
        Distance to the nearest edge of each of ``others``.
    """
    m, ne = points.shape[0], edges.shape[0]
    stacked = np.vstack([edges, *others]) if others else edges
    splits = np.cumsum([ne] + [o.shape[0] for o in others])
    d2 = np.empty(m)
    q = np.empty((m, 2))
    d2_others = [np.empty(m) for _ in others]
    for c in _chunks(m, stacked.shape[0]):
        dist2, qx, qy = _project(points[c, :1], points[c, 1:], stacked)
        k = dist2[:, :ne].argmin(axis=1)
        rows = np.arange(k.size)
        d2[c] = dist2[rows, k]
        q[c, 0], q[c, 1] = qx[rows, k], qy[rows, k]
        for j, out in enumerate(d2_others):
            out[c] = dist2[:, splits[j] : splits[j + 1]].min(axis=1)
    return np.sqrt(d2), q, [np.sqrt(o) for o in d2_others]


def inside(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon: does a ray to +east cross the boundary an odd number of times?

    Parameters
    ----------
    points : ndarray, shape (M, 2)
    edges : ndarray, shape (E, 4)

    Returns
    -------
    ndarray, shape (M,), bool
        True strictly inside; points on the boundary may fall either way (callers that
        care test the distance to the boundary too).
    """
    m = points.shape[0]
    out = np.empty(m, bool)
    ax, ay, bx, by = edges.T
    for c in _chunks(m, edges.shape[0]):
        px, py = points[c, :1], points[c, 1:]
        # The edge straddles the ray's line (half-open, so a vertex counts once) ...
        straddle = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            # ... and meets it east of the point.
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
        out[c] = (np.count_nonzero(straddle & (px < x_cross), axis=1) % 2) == 1
    return out


def first_crossing(start: np.ndarray, delta: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Where each segment ``start + s * delta`` first crosses a boundary edge.

    Solves ``start + s d = a + u (b - a)`` for every segment and edge with 2-D cross
    products, vectorised over both; parallel edges never count.

    Parameters
    ----------
    start, delta : ndarray, shape (M, 2)
    edges : ndarray, shape (E, 4)
        ``ax, ay, bx, by`` per edge.

    Returns
    -------
    ndarray, shape (M,)
        Smallest ``s`` in [0, 1] with a crossing, ``inf`` where there is none.
    """
    out = np.full(start.shape[0], np.inf)
    ax, ay = edges[:, 0], edges[:, 1]
    ex, ey = edges[:, 2] - ax, edges[:, 3] - ay
    for c in _chunks(start.shape[0], edges.shape[0]):
        px, py = start[c, :1], start[c, 1:]
        dx, dy = delta[c, :1], delta[c, 1:]
        denom = dx * ey - dy * ex  # cross(d, e)
        wx, wy = ax - px, ay - py  # a - p
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (wx * ey - wy * ex) / denom  # cross(a - p, e) / cross(d, e)
            u = (wx * dy - wy * dx) / denom  # cross(a - p, d) / cross(d, e)
        ok = (denom != 0) & (s >= 0) & (s <= 1) & (u >= 0) & (u <= 1)
        out[c] = np.where(ok, s, np.inf).min(axis=1)
    return out


def _cut_for(ring: np.ndarray, axis: np.ndarray, i: int) -> tuple[str, int]:
    """Cut at vertex ``i``, or at the midpoint of an edge there that runs across the axis."""
    k = len(ring)
    best, best_cos = None, 0.5  # "across" = within 60 degrees of the normal
    for j in ((i - 1) % k, (i + 1) % k):
        edge = ring[j] - ring[i]
        length = float(np.hypot(edge[0], edge[1]))
        if length > 0 and abs(edge @ axis) / length < best_cos:
            best, best_cos = j, abs(edge @ axis) / length
    if best is None:
        return ("vertex", i)
    return ("edge", i if best == (i + 1) % k else best)  # edge from index to index+1


def split_ring(ring: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut a closed ring at its two extreme points along ``axis`` into two chains.

    Where an end of the strip is a flat edge across the axis (a rectangle), the cut is
    at that edge's midpoint rather than at one of its corners, so neither side owns the
    end; a pointed end is cut at its tip.

    Parameters
    ----------
    ring : ndarray, shape (K, 2)
        Ring vertices without the closing repeat.
    axis : ndarray, shape (2,)
        Unit vector of the zone's long axis.

    Returns
    -------
    a, b : ndarray, shape (Ka, 2), (Kb, 2)
        The two chains, each running from one cut point to the other.
    """
    k = len(ring)
    proj = ring @ axis
    cuts = [_cut_for(ring, axis, int(np.argmin(proj))), _cut_for(ring, axis, int(np.argmax(proj)))]
    pts: list[np.ndarray] = []
    at: dict[tuple[str, int], int] = {}
    for i in range(k):  # once per zone vertex, at load time
        if ("vertex", i) in cuts:
            at[("vertex", i)] = len(pts)
        pts.append(ring[i])
        if ("edge", i) in cuts:
            at[("edge", i)] = len(pts)
            pts.append(0.5 * (ring[i] + ring[(i + 1) % k]))
    i0, i1 = at[cuts[0]], at[cuts[1]]
    n = len(pts)
    arr = np.asarray(pts)
    a = arr[[(i0 + s) % n for s in range((i1 - i0) % n + 1)]]
    b = arr[[(i1 + s) % n for s in range((i0 - i1) % n + 1)]]
    return a, b
