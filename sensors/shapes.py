"""Plane geometry for the simulation: zone-aligned coordinates and coverage polygons.

Everything here works in the local east/north frame, in metres. Bearings are compass
bearings: degrees clockwise from north, as an operator reads them off a map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import ArrayLike

# Zone edges are tabulated at this spacing along the zone axis and interpolated between.
_EDGE_STEP_M = 50.0


@dataclass(frozen=True, eq=False)
class ZoneFrame:
    """Coordinates aligned with a long, thin zone: ``u`` along its axis, ``w`` across.

    The axis is the long side of the zone's minimum rotated rectangle, oriented so
    that it points east-ish (north-ish for a north-south zone). The normal ``n`` is the
    axis turned 90 degrees to the left, so for an east-west zone ``+w`` is north. The
    zone's two sides are named ``sides[0]`` (``+w``) and ``sides[1]`` (``-w``).

    Parameters
    ----------
    polygon : shapely.Polygon
        The zone in the local frame.
    """

    polygon: shapely.Polygon
    center: np.ndarray = field(init=False)
    axis: np.ndarray = field(init=False)
    normal: np.ndarray = field(init=False)
    u_range: tuple[float, float] = field(init=False)
    _u_grid: np.ndarray = field(init=False, repr=False)
    _w_lo: np.ndarray = field(init=False, repr=False)
    _w_hi: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rect = np.asarray(self.polygon.minimum_rotated_rectangle.exterior.coords)[:4]
        edges = np.roll(rect, -1, axis=0) - rect
        lengths = np.hypot(edges[:, 0], edges[:, 1])
        axis = edges[int(np.argmax(lengths))] / lengths.max()
        # Point the axis east-ish (or north-ish) so side names do not depend on
        # the order of the polygon's vertices.
        if axis[0] < -1e-9 or (abs(axis[0]) <= 1e-9 and axis[1] < 0):
            axis = -axis
        normal = np.array([-axis[1], axis[0]])
        center = rect.mean(axis=0)
        u = (rect - center) @ axis
        u_lo, u_hi = float(u.min()), float(u.max())
        grid = np.arange(u_lo, u_hi + _EDGE_STEP_M, _EDGE_STEP_M)
        grid = np.clip(grid, u_lo + 1e-6, u_hi - 1e-6)
        span = float(lengths.max() + lengths.min()) * 2.0
        starts = center + grid[:, None] * axis - span * normal
        ends = center + grid[:, None] * axis + span * normal
        lines = shapely.linestrings(np.stack([starts, ends], axis=1))
        cuts = shapely.intersection(lines, self.polygon)
        coords, index = shapely.get_coordinates(cuts, return_index=True)
        w = (coords - center) @ normal
        w_lo = np.full(grid.shape, np.inf)
        w_hi = np.full(grid.shape, -np.inf)
        np.minimum.at(w_lo, index, w)
        np.maximum.at(w_hi, index, w)
        # A cut that missed (a ragged end) borrows the nearest good one.
        good = np.isfinite(w_lo)
        w_lo = np.interp(grid, grid[good], w_lo[good])
        w_hi = np.interp(grid, grid[good], w_hi[good])
        for name, value in (
            ("center", center),
            ("axis", axis),
            ("normal", normal),
            ("u_range", (u_lo, u_hi)),
            ("_u_grid", grid),
            ("_w_lo", w_lo),
            ("_w_hi", w_hi),
        ):
            object.__setattr__(self, name, value)

    def edges(self, u: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ``w`` of the zone at along-axis positions ``u``, each shape of ``u``."""
        u = np.asarray(u, dtype=float)
        return np.interp(u, self._u_grid, self._w_lo), np.interp(u, self._u_grid, self._w_hi)

    def to_local(self, u: ArrayLike, w: ArrayLike) -> np.ndarray:
        """Zone coordinates, each shape (...), to east/north, shape (..., 2)."""
        u = np.asarray(u, dtype=float)[..., None]
        w = np.asarray(w, dtype=float)[..., None]
        return self.center + u * self.axis + w * self.normal

    def outside(self, u: ArrayLike, side: ArrayLike, distance: ArrayLike) -> np.ndarray:
        """Points ``distance`` metres beyond the edge on ``side`` (+1 or -1), shape (..., 2)."""
        lo, hi = self.edges(u)
        distance = np.asarray(distance, dtype=float)
        w = np.where(np.asarray(side) > 0, hi + distance, lo - distance)
        return self.to_local(u, w)

    def inside(self, u: ArrayLike, fraction: ArrayLike) -> np.ndarray:
        """Points ``fraction`` of the way across the zone (0 = lower edge), shape (..., 2)."""
        lo, hi = self.edges(u)
        return self.to_local(u, lo + np.asarray(fraction, dtype=float) * (hi - lo))

    def side_of(self, points: np.ndarray) -> np.ndarray:
        """+1 or -1 for points outside the zone: which side of it they lie on, shape (P,).

        Measured along the outward direction from the nearest point of the boundary,
        so it stays right where the zone bends.
        """
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        boundary = self.polygon.exterior
        nearest = shapely.get_coordinates(
            shapely.line_interpolate_point(
                boundary, shapely.line_locate_point(boundary, shapely.points(points))
            )
        )
        return np.where((points - nearest) @ self.normal >= 0.0, 1, -1)


def rectangle(center: np.ndarray, heading_deg: float, length: float, width: float) -> np.ndarray:
    """Corners of a rectangle, ``length`` along the compass ``heading``, shape (4, 2)."""
    h = np.deg2rad(heading_deg)
    along = np.array([np.sin(h), np.cos(h)])
    across = np.array([np.cos(h), -np.sin(h)])
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=float)
    return (
        np.asarray(center, dtype=float)
        + signs[:, :1] * (length / 2) * along
        + signs[:, 1:] * (width / 2) * across
    )


def sector(
    position: np.ndarray, r_min: float, r_max: float, azimuth_deg: float, width_deg: float,
    n_arc: int = 33,
) -> np.ndarray:
    """Polygon holding a radar sector (an annular wedge, or a disc for a full circle), shape (K, 2).

    The polygon circumscribes the arcs, so everything the radar can see is inside it
    (by at most ``r_max * (1 / cos(step / 2) - 1)``, a few metres, more).
    """
    position = np.asarray(position, dtype=float)
    if width_deg >= 360.0:
        return circle(position, r_max, 4 * n_arc)
    half = np.deg2rad(width_deg) / 2
    b = np.deg2rad(azimuth_deg) + np.linspace(-half, half, n_arc)
    # Outer vertices pushed out so the chords clear the arc: the polygon holds the sector.
    r_out = r_max / np.cos(half / (n_arc - 1))
    outer = position + r_out * np.stack([np.sin(b), np.cos(b)], axis=1)
    if r_min <= 0.0:
        return np.vstack([position[None, :], outer])
    inner = position + r_min * np.stack([np.sin(b[::-1]), np.cos(b[::-1])], axis=1)
    return np.vstack([outer, inner])


def circle(center: np.ndarray, radius: float, n: int = 16) -> np.ndarray:
    """A regular ``n``-gon circumscribing a circle, so the circle lies inside it, shape (n, 2)."""
    b = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = radius / np.cos(np.pi / n)
    return np.asarray(center, dtype=float) + r * np.stack([np.sin(b), np.cos(b)], axis=1)


def bearing_difference(a_deg: np.ndarray, b_deg: float) -> np.ndarray:
    """Smallest absolute difference between compass bearings, degrees in [0, 180]."""
    return np.abs((np.asarray(a_deg) - b_deg + 180.0) % 360.0 - 180.0)


def polyline_at(points: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position and compass heading at arc lengths ``s`` along a closed polyline.

    Parameters
    ----------
    points : ndarray, shape (P, 2)
        Vertices of the loop; the last joins back to the first.
    s : ndarray, shape (S,)
        Arc lengths in metres, wrapped around the loop.

    Returns
    -------
    xy : ndarray, shape (S, 2)
    heading_deg : ndarray, shape (S,)
    """
    loop = np.vstack([points, points[:1]])
    seg = np.diff(loop, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = np.mod(np.asarray(s, dtype=float), cum[-1])
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    frac = (s - cum[k]) / seg_len[k]
    xy = loop[k] + frac[:, None] * seg[k]
    heading = np.rad2deg(np.arctan2(seg[k, 0], seg[k, 1]))
    return xy, heading


def racetrack(center: np.ndarray, heading_deg: float, length: float, width: float,
              n_turn: int = 12) -> np.ndarray:
    """Vertices of a racetrack loop (two straights, two half circles), shape (P, 2).

    ``length`` is the straight leg along the compass ``heading``, ``width`` the
    distance between the legs; the loop is flown clockwise seen from above.
    """
    h = np.deg2rad(heading_deg)
    along = np.array([np.sin(h), np.cos(h)])
    right = np.array([np.cos(h), -np.sin(h)])
    c = np.asarray(center, dtype=float)
    r = width / 2
    far = c + along * length / 2
    near = c - along * length / 2
    phi = np.linspace(0.0, np.pi, n_turn + 1)[1:-1, None]
    # Out along the left leg, a right turn at the far end, back along the right leg.
    turn_far = far + r * (np.cos(phi) * -right + np.sin(phi) * along)
    turn_near = near + r * (np.cos(phi) * right - np.sin(phi) * along)
    return np.vstack([
        near - r * right, far - r * right, turn_far, far + r * right, near + r * right, turn_near,
    ])
