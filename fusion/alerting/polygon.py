"""Polygon geometry as numpy edge arithmetic: no shapely call per point.

A zone boundary is held as an edge table ``(E, 4)`` with rows ``ax, ay, bx, by`` (every
ring: exteriors and holes). The alert engine asks the same few questions of a few
hundred track positions at every step; each is answered here for all points against all
edges at once, in chunks that bound the ``(E, M)`` temporaries:

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
    "EdgeTable",
    "chain_edges",
    "first_crossing",
    "inside",
    "nearest_on_edges",
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
    if m <= step:  # the usual case: one chunk
        return [slice(0, m)] if m else []
    return [slice(lo, min(lo + step, m)) for lo in range(0, m, step)]


class EdgeTable:
    """Edges ``(E, 4)`` with what every query needs of them computed once.

    Parameters
    ----------
    edges : ndarray, shape (E, 4)
        ``ax, ay, bx, by`` per edge: the boundary first, then any further sets.
    sets : sequence of int
        Sizes of the further edge sets after the first ``E - sum(sets)`` boundary edges
        (a zone's two side chains), whose nearest distances :meth:`nearest` also returns.
    """

    def __init__(self, edges: np.ndarray, sets: tuple[int, ...] = ()):
        self.edges = np.asarray(edges, dtype=float)
        self.n_boundary = self.edges.shape[0] - sum(sets)
        self.splits = np.cumsum([self.n_boundary, *sets]).tolist()
        self.ax, self.ay, self.bx, self.by = self.edges.T.copy()
        self.ex, self.ey = self.bx - self.ax, self.by - self.ay
        ee = self.ex * self.ex + self.ey * self.ey
        self.inv_ee = np.divide(1.0, ee, out=np.zeros_like(ee), where=ee > 0)
        b = slice(0, self.n_boundary)
        # dx/dy of each boundary edge, for where it meets a horizontal line; 0 for a
        # horizontal edge, which never straddles one (so no inf * 0 at query time).
        ey = self.ey[b]
        self.slope = np.divide(self.ex[b], ey, out=np.zeros_like(ey), where=ey != 0)
        # The queries work on (E, M) arrays, edges down and points across, so that
        # numpy's inner loop runs along the points (hundreds) rather than the edges (a
        # handful): each edge quantity as an (E, 1) column, sliced once.
        self._set_bounds = list(zip(self.splits[:-1], self.splits[1:], strict=True))
        self._all = tuple(a[:, None] for a in (self.ax, self.ay, self.ex, self.ey, self.inv_ee))
        self._boundary = tuple(
            a[b, None] for a in (self.ax, self.ay, self.by, self.ex, self.ey)
        ) + (self.slope[:, None],)
        self._ones = np.ones(self.n_boundary, np.uint8)  # counts crossings (inside)

    def nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Nearest boundary distance and point, and the nearest distance to each further set.

        Projects ``p`` on each edge ``a + u (b - a)``, clamping ``u`` to [0, 1].

        Returns
        -------
        d : ndarray, shape (M,)
        q : ndarray, shape (M, 2)
        d_sets : list of ndarray, shape (M,)
        """
        m, nb = points.shape[0], self.n_boundary
        d2, q = np.empty(m), np.empty((m, 2))
        d2_sets = np.empty((len(self._set_bounds), m))
        ax, ay, ex, ey, inv_ee = self._all
        for c in _chunks(m, self.edges.shape[0]):
            px, py = points[c, 0], points[c, 1]
            # u = clamp((p - a) . e / |e|^2, 0, 1): where the perpendicular from p lands
            u = ((px - ax) * ex + (py - ay) * ey) * inv_ee
            np.clip(u, 0.0, 1.0, out=u)
            qx, qy = ax + u * ex, ay + u * ey
            dist2 = (px - qx) ** 2 + (py - qy) ** 2
            # The nearest boundary edge of each point (the first of equals), gathered flat.
            n = u.shape[1]
            k = dist2[:nb].argmin(axis=0) * n + np.arange(n)
            d2[c] = dist2.ravel()[k]
            q[c, 0], q[c, 1] = qx.ravel()[k], qy.ravel()[k]
            for (lo, hi), out in zip(self._set_bounds, d2_sets, strict=True):
                dist2[lo:hi].min(axis=0, out=out[c])
        return np.sqrt(d2, out=d2), q, list(np.sqrt(d2_sets, out=d2_sets))

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Even-odd rule: does a ray to +east cross the boundary an odd number of times?

        Returns
        -------
        ndarray, shape (M,), bool
            True strictly inside; points on the boundary may fall either way (callers
            that care test the distance to the boundary too).
        """
        nb = self.n_boundary
        ax, ay, by, _, _, slope = self._boundary
        ones = self._ones  # counts crossings by an (E,) x (E, M) product
        out = np.empty(points.shape[0], bool)
        for c in _chunks(points.shape[0], nb):
            px, py = points[c, 0], points[c, 1]
            # The edge straddles the ray's line (half-open, so a vertex counts once) ...
            straddle = (ay > py) != (by > py)
            # ... and meets it east of the point.
            straddle &= px < ax + (py - ay) * slope
            crossings = ones @ straddle.view(np.uint8)  # mod 256: parity survives
            out[c] = (crossings & 1).view(bool)
        return out

    def first_crossing(self, start: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Where each segment ``start + s * delta`` first crosses a boundary edge.

        Solves ``start + s d = a + u (b - a)`` for every segment and edge with 2-D cross
        products, vectorised over both; parallel edges never count.

        Parameters
        ----------
        start, delta : ndarray, shape (M, 2)

        Returns
        -------
        ndarray, shape (M,)
            Smallest ``s`` in [0, 1] with a crossing, ``inf`` where there is none.
        """
        chunks = _chunks(start.shape[0], self.n_boundary)
        if len(chunks) == 1:  # the usual case
            return self._first_crossing(start, delta)
        out = np.full(start.shape[0], np.inf)
        for c in chunks:
            out[c] = self._first_crossing(start[c], delta[c])
        return out

    def _first_crossing(self, start: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """:meth:`first_crossing` of one chunk of segments."""
        ax, ay, _, ex, ey, _ = self._boundary
        px, py = start[:, 0], start[:, 1]
        dx, dy = delta[:, 0], delta[:, 1]
        denom = dx * ey - dy * ex  # cross(d, e)
        parallel = denom == 0
        denom[parallel] = 1.0  # avoids a 0/0 warning; such edges never count:
        wx, wy = ax - px, ay - py  # a - p
        s = (wx * ey - wy * ex) / denom  # cross(a - p, e) / cross(d, e)
        u = (wx * dy - wy * dx) / denom  # cross(a - p, d) / cross(d, e)
        s[parallel] = np.inf
        # s and u both in [0, 1] (a NaN in either fails, as it would one by one)
        ok = (np.minimum(s, u) >= 0) & (np.maximum(s, u) <= 1)
        s = np.where(ok, s, np.inf)
        n = s.shape[1]
        return s.ravel()[s.argmin(axis=0) * n + np.arange(n)]


def nearest_on_edges(points: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point ``(M, 2)`` to the nearest of ``edges`` ``(E, 4)``, and the
    nearest point on them: ``d`` (M,), ``q`` (M, 2)."""
    d, q, _ = EdgeTable(edges).nearest(points)
    return d, q


def inside(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:meth:`EdgeTable.inside` for a one-off edge array ``(E, 4)``."""
    return EdgeTable(edges).inside(points)


def first_crossing(start: np.ndarray, delta: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:meth:`EdgeTable.first_crossing` for a one-off edge array ``(E, 4)``."""
    return EdgeTable(edges).first_crossing(start, delta)


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
