"""Zones: buffer-zone polygons in the local frame, and the vectorised geometry alerts need.

A zone is configured as GeoJSON (WGS84 lon/lat, RFC 7946) and converted once, at load
time, to the local east/north frame of :class:`fusion.geo.LocalFrame`. Everything the
alert engine asks of a zone is then a vectorised question over all tracks at once:

* :meth:`Zone.contains` -- is the point inside (``shapely.contains_xy``)?
* :meth:`Zone.probability_inside` -- how likely is the track inside, given its
  position covariance (half-plane approximation, below)?
* :meth:`Zone.time_to_breach` -- when does the straight-line path enter the zone?
* :meth:`Zone.side` -- which of the zone's two sides is a point on?

Probability inside
------------------
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
``_FAR_SIGMAS`` standard deviations from the zone's bounding box are given 0 without a
distance computation.

Sides
-----
A buffer zone separates two forces, so every point is on one of its two sides. The
zone's long axis comes from its minimum-area bounding rectangle (or from the
``axis_bearing`` property, degrees clockwise from north); each part's outer ring is cut
at its two extreme points along that axis into two chains, one on each side of the
axis. A point is on the side whose chain is nearer, which keeps working for a strip
that curves. The positive side is the one the axis normal points to, oriented
northwards for a strip running roughly east-west (sides named ``"north"`` and
``"south"``) and eastwards for one running roughly north-south (``"east"`` and
``"west"``). The ``side_names`` property renames them: a list ``[positive, negative]``
or a mapping from the compass name to a force name, e.g.
``{"north": "blue", "south": "red"}``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import shapely
from scipy.special import ndtr

from fusion.geo import LocalFrame

__all__ = ["Zone", "ZoneError", "ZoneSet"]

# Zone names appear in ZeroMQ topics (alert.<zone>.<kind>) and in alert ids
# (<zone>:<kind>:<track>:<n>), so dots and colons are not allowed.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
# Phi(-8) ~ 6e-16: beyond this many sigma a track's probability is exactly 0 or 1.
_FAR_SIGMAS = 8.0
# RFC 7946 edges are straight in lon/lat; densify them before projecting so that the
# local polygon follows them (0.01 deg is about 1 km).
_DEFAULT_DENSIFY_DEG = 0.01


class ZoneError(ValueError):
    """A zone definition that cannot be used; the message names the zone or feature."""


def _as_points(pos: np.ndarray, name: str = "pos") -> np.ndarray:
    pos = np.asarray(pos, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {pos.shape}")
    return pos


def _split_ring(ring: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut a closed ring at its two extreme points along ``axis`` into two chains.

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
    # Where an end of the strip is a flat edge across the axis (a rectangle), cut at
    # that edge's midpoint rather than at one of its corners, so neither side owns
    # the end; a pointed end is cut at its tip.
    k = len(ring)
    proj = ring @ axis

    def cut_for(i: int) -> tuple[str, int]:
        best, best_cos = None, 0.5  # "across" = within 60 degrees of the normal
        for j in ((i - 1) % k, (i + 1) % k):
            edge = ring[j] - ring[i]
            length = float(np.hypot(edge[0], edge[1]))
            if length > 0 and abs(edge @ axis) / length < best_cos:
                best, best_cos = j, abs(edge @ axis) / length
        if best is None:
            return ("vertex", i)
        return ("edge", i if best == (i + 1) % k else best)  # edge from index to index+1

    cuts = [cut_for(int(np.argmin(proj))), cut_for(int(np.argmax(proj)))]
    pts: list[np.ndarray] = []
    at: dict[tuple[str, int], int] = {}
    for i in range(k):
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


@dataclass(frozen=True, eq=False)
class Zone:
    """One zone: a polygon or multipolygon (holes allowed) in local metres.

    Parameters
    ----------
    name : str
        Unique name, ``[A-Za-z0-9_-]{1,64}`` (it appears in topics and alert ids).
    geometry : shapely.Polygon or shapely.MultiPolygon
        The zone in the local east/north frame, metres.
    kind : str
        What sort of zone it is (``"buffer"``, ``"restricted"``, ...); informational.
    side_names : sequence of 2 str or mapping, optional
        Names of the (positive, negative) sides, or a mapping from compass name to
        name; default the compass names (see the module docstring).
    axis_bearing : float, optional
        Bearing of the zone's long axis in degrees clockwise from north; default from
        the minimum-area bounding rectangle.
    properties : mapping, optional
        Any other GeoJSON properties, kept for reporting.

    Raises
    ------
    ZoneError
        On a bad name, an empty, zero-area or invalid geometry, or bad side names.
    """

    name: str
    geometry: shapely.Polygon | shapely.MultiPolygon
    kind: str = "buffer"
    side_names: Any = None
    axis_bearing: float | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ZONE_NAME.match(self.name):
            raise ZoneError(f"zone name {self.name!r} must match [A-Za-z0-9_-]{{1,64}}")
        geom = self.geometry
        if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
            raise ZoneError(
                f"zone {self.name!r}: geometry must be a Polygon or MultiPolygon, "
                f"got {type(geom).__name__}"
            )
        if geom.is_empty or not geom.area > 0:
            raise ZoneError(f"zone {self.name!r}: geometry is empty or has no area")
        if not shapely.is_valid(geom):
            raise ZoneError(
                f"zone {self.name!r}: invalid geometry ({shapely.is_valid_reason(geom)})"
            )
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            raise ZoneError(f"zone {self.name!r}: coordinates are not finite")
        # Prepared geometries make the repeated contains/intersection queries fast.
        shapely.prepare(geom)
        boundary = geom.boundary
        shapely.prepare(boundary)
        axis = self._long_axis(geom)
        normal = np.array([-axis[1], axis[0]])
        if abs(normal[1]) >= abs(normal[0]):
            normal = normal if normal[1] > 0 else -normal
            compass = ("north", "south")
        else:
            normal = normal if normal[0] > 0 else -normal
            compass = ("east", "west")
        names = self._resolve_side_names(compass)
        pos_chains, neg_chains = [], []
        parts = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
        for part in parts:
            ring = np.asarray(part.exterior.coords)[:-1]
            a, b = _split_ring(ring, axis)
            # The chain further along the normal is the positive side's.
            if a.mean(axis=0) @ normal >= b.mean(axis=0) @ normal:
                pos_chains.append(a)
                neg_chains.append(b)
            else:
                pos_chains.append(b)
                neg_chains.append(a)
        pos_line = shapely.multilinestrings([shapely.linestrings(c) for c in pos_chains])
        neg_line = shapely.multilinestrings([shapely.linestrings(c) for c in neg_chains])
        shapely.prepare(pos_line)
        shapely.prepare(neg_line)
        set_ = object.__setattr__
        set_(self, "properties", MappingProxyType(dict(self.properties)))
        set_(self, "_boundary", boundary)
        set_(self, "_edges", _ring_edges(geom))
        set_(self, "_bounds", np.asarray(geom.bounds, dtype=float))
        set_(self, "_axis", axis)
        set_(self, "_normal", normal)
        set_(self, "_centre", np.asarray(geom.centroid.coords[0], dtype=float))
        set_(self, "_chains", (pos_line, neg_line))
        set_(self, "_sides", names)
        set_(self, "_compass", compass)

    def _long_axis(self, geom) -> np.ndarray:
        if self.axis_bearing is not None:
            try:
                bearing = math.radians(float(self.axis_bearing))
            except (TypeError, ValueError):
                raise ZoneError(
                    f"zone {self.name!r}: axis_bearing must be a number, got {self.axis_bearing!r}"
                ) from None
            if not math.isfinite(bearing):
                raise ZoneError(f"zone {self.name!r}: axis_bearing must be finite")
            return np.array([math.sin(bearing), math.cos(bearing)])
        corners = np.asarray(shapely.oriented_envelope(geom).exterior.coords)
        e1, e2 = corners[1] - corners[0], corners[2] - corners[1]
        edge = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
        return edge / np.hypot(*edge)

    def _resolve_side_names(self, compass: tuple[str, str]) -> tuple[str, str]:
        sides = self.side_names
        if sides is None:
            return compass
        if isinstance(sides, Mapping):
            if set(sides) != set(compass) or not all(
                isinstance(v, str) and v for v in sides.values()
            ):
                raise ZoneError(
                    f"zone {self.name!r}: side_names mapping must map exactly {list(compass)} "
                    f"(this zone's compass sides) to non-empty names, got {dict(sides)!r}"
                )
            return (sides[compass[0]], sides[compass[1]])
        if (
            isinstance(sides, list | tuple)
            and len(sides) == 2
            and all(isinstance(v, str) and v for v in sides)
            and sides[0] != sides[1]
        ):
            return (sides[0], sides[1])
        raise ZoneError(
            f"zone {self.name!r}: side_names must be two distinct names "
            f"[{compass[0]}-side, {compass[1]}-side] or a mapping, got {sides!r}"
        )

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_local(
        cls,
        name: str,
        shell: np.ndarray,
        holes: Iterable[np.ndarray] = (),
        **kwargs: Any,
    ) -> Zone:
        """Make a single-polygon zone from local vertices.

        Parameters
        ----------
        name : str
            Zone name.
        shell : ndarray, shape (K, 2)
            Outer ring, east/north metres (closing vertex optional).
        holes : iterable of ndarray, shape (Kh, 2)
            Inner rings.
        **kwargs
            ``kind``, ``side_names``, ``axis_bearing``, ``properties``.
        """
        try:
            poly = shapely.Polygon(np.asarray(shell, float), [np.asarray(h, float) for h in holes])
        except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
            raise ZoneError(f"zone {name!r}: bad rings ({exc})") from None
        return cls(name, poly, **kwargs)

    # ------------------------------------------------------------------- properties

    @property
    def sides(self) -> tuple[str, str]:
        """Names of the positive (``side == 1``) and negative (``side == -1``) sides."""
        return self._sides  # type: ignore[attr-defined]

    @property
    def compass_sides(self) -> tuple[str, str]:
        """Compass names of the positive and negative sides (``"north"``, ``"south"``, ...)."""
        return self._compass  # type: ignore[attr-defined]

    @property
    def axis(self) -> np.ndarray:
        """Unit vector of the zone's long axis (east, north), shape (2,)."""
        return self._axis.copy()  # type: ignore[attr-defined]

    @property
    def normal(self) -> np.ndarray:
        """Unit vector pointing to the positive side, shape (2,)."""
        return self._normal.copy()  # type: ignore[attr-defined]

    def side_name(self, side: int) -> str | None:
        """Name of side ``1`` or ``-1``; ``None`` for ``0`` (unknown)."""
        if side == 1:
            return self.sides[0]
        if side == -1:
            return self.sides[1]
        return None

    # ------------------------------------------------------------------- geometry

    def near(self, pos: np.ndarray, margin: np.ndarray | float) -> np.ndarray:
        """Cheap prefilter: which points lie within ``margin`` of the bounding box.

        Parameters
        ----------
        pos : ndarray, shape (N, 2)
            Positions, metres.
        margin : float or ndarray, shape (N,)
            Distance, metres.

        Returns
        -------
        ndarray, shape (N,), bool
            False only where the point is surely further than ``margin`` from the zone.
        """
        pos = _as_points(pos)
        x0, y0, x1, y1 = self._bounds  # type: ignore[attr-defined]
        dx = np.maximum(np.maximum(x0 - pos[:, 0], pos[:, 0] - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - pos[:, 1], pos[:, 1] - y1), 0.0)
        return np.hypot(dx, dy) <= margin

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which points are strictly inside (points in a hole are outside).

        Parameters
        ----------
        points : ndarray, shape (N, 2)
            East/north metres.

        Returns
        -------
        ndarray, shape (N,), bool
        """
        points = _as_points(points, "points")
        return np.asarray(
            shapely.contains_xy(self.geometry, points[:, 0], points[:, 1]), dtype=bool
        )

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Distance to the zone, metres: 0 inside or on the boundary.

        Parameters
        ----------
        points : ndarray, shape (N, 2)

        Returns
        -------
        ndarray, shape (N,), float64
        """
        points = _as_points(points, "points")
        return np.asarray(shapely.distance(self.geometry, shapely.points(points)), dtype=float)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance to the boundary, metres: positive inside, negative outside.

        Parameters
        ----------
        points : ndarray, shape (N, 2)

        Returns
        -------
        ndarray, shape (N,), float64
        """
        points = _as_points(points, "points")
        boundary = self._boundary  # type: ignore[attr-defined]
        d = np.asarray(shapely.distance(boundary, shapely.points(points)), dtype=np.float64)
        return np.where(self.contains(points), d, -d)

    def probability_inside(self, pos: np.ndarray, P_pos: np.ndarray) -> np.ndarray:
        """Probability that a Gaussian position lies inside, ``Phi(d / sigma)``.

        ``d`` is the signed distance to the nearest boundary point (positive inside) and
        ``sigma^2 = n' P n`` the variance along the boundary normal ``n`` through the
        point: the half-plane approximation of the module docstring.

        Parameters
        ----------
        pos : ndarray, shape (N, 2)
            Position estimates, metres.
        P_pos : ndarray, shape (N, 2, 2)
            Position covariances, m^2, symmetric positive semi-definite.

        Returns
        -------
        ndarray, shape (N,), float64 in [0, 1]
        """
        pos = _as_points(pos)
        P_pos = np.asarray(P_pos, dtype=float)
        if P_pos.shape != (pos.shape[0], 2, 2):
            raise ValueError(f"P_pos must have shape ({pos.shape[0]}, 2, 2), got {P_pos.shape}")
        p = np.zeros(pos.shape[0])
        # sqrt(trace) bounds the largest standard deviation, so beyond this margin Phi is 0.
        sig_max = np.sqrt(np.maximum(P_pos[:, 0, 0] + P_pos[:, 1, 1], 0.0))
        idx = np.flatnonzero(self.near(pos, _FAR_SIGMAS * sig_max))
        if idx.size == 0:
            return p
        pts = pos[idx]
        inside = self.contains(pts)
        # shortest_line(p, boundary) runs from p to its nearest boundary point q.
        lines = shapely.shortest_line(shapely.points(pts), self._boundary)  # type: ignore[attr-defined]
        q = shapely.get_coordinates(lines).reshape(-1, 2, 2)[:, 1]
        diff = pts - q
        d = np.hypot(diff[:, 0], diff[:, 1])
        n = np.divide(diff, d[:, None], out=np.zeros_like(diff), where=d[:, None] > 0)
        Pi = P_pos[idx]
        # sigma^2 = n' P n
        var = np.einsum("ni,nij,nj->n", n, Pi, n)
        s = np.where(inside, d, -d)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = s / np.sqrt(var)
        # A degenerate variance along n means the point estimate decides; on the
        # boundary itself (d == 0) the half-plane gives exactly one half.
        z = np.where(var > 0, z, np.where(s > 0, np.inf, -np.inf))
        z = np.where(d > 0, z, 0.0)
        p[idx] = ndtr(z)
        return p

    def time_to_breach(
        self, pos: np.ndarray, vel: np.ndarray, horizon: float | np.ndarray
    ) -> np.ndarray:
        """Time until the straight-line path first touches the zone.

        Parameters
        ----------
        pos : ndarray, shape (N, 2)
            Positions, metres.
        vel : ndarray, shape (N, 2)
            Velocities, m/s.
        horizon : float or ndarray, shape (N,)
            Look-ahead, seconds.

        Returns
        -------
        ndarray, shape (N,), float64
            0 for points inside or on the boundary; the entry time in ``[0, horizon]``
            where the segment ``pos -> pos + vel * horizon`` reaches the zone; ``inf``
            otherwise (including a stationary point outside).
        """
        pos = _as_points(pos)
        vel = _as_points(vel, "vel")
        if vel.shape != pos.shape:
            raise ValueError(f"vel shape {vel.shape} does not match pos shape {pos.shape}")
        horizon = np.broadcast_to(np.asarray(horizon, dtype=float), (pos.shape[0],))
        ttb = np.full(pos.shape[0], np.inf)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        reach = speed * horizon
        cand = np.flatnonzero(self.near(pos, np.where(np.isfinite(reach), reach, 0.0)))
        if cand.size == 0:
            return ttb
        pts = shapely.points(pos[cand])
        on = np.asarray(shapely.intersects(self.geometry, pts), dtype=bool)
        ttb[cand[on]] = 0.0
        move = cand[~on & (speed[cand] > 0) & (horizon[cand] > 0)]
        if move.size:
            # The start is outside, so the first boundary crossing along the path is
            # the entry: s in [0, 1] along pos -> pos + vel * horizon, time s * horizon.
            s = _first_crossing(pos[move], vel[move] * horizon[move, None], self._edges)  # type: ignore[attr-defined]
            ttb[move] = s * horizon[move]
        return ttb

    def side(self, points: np.ndarray) -> np.ndarray:
        """Which side of the zone each point is on.

        Parameters
        ----------
        points : ndarray, shape (N, 2)

        Returns
        -------
        ndarray, shape (N,), int8
            ``1`` for the positive side (``sides[0]``), ``-1`` for the negative side.
            Points inside are on the side of the half they are in.
        """
        points = _as_points(points, "points")
        geoms = shapely.points(points)
        pos_line, neg_line = self._chains  # type: ignore[attr-defined]
        d_pos = np.asarray(shapely.distance(pos_line, geoms), dtype=float)
        d_neg = np.asarray(shapely.distance(neg_line, geoms), dtype=float)
        # Ties (a point on a cut point, or on the axis beyond an end): fall back to the
        # side of the axis through the centroid.
        ahead = (points - self._centre) @ self._normal >= 0  # type: ignore[attr-defined]
        out = np.where(d_pos < d_neg, 1, np.where(d_neg < d_pos, -1, np.where(ahead, 1, -1)))
        return out.astype(np.int8)

    # ------------------------------------------------------------------- GeoJSON

    def to_geojson(self, frame: LocalFrame) -> dict[str, Any]:
        """This zone as a GeoJSON Feature in lon/lat (the local vertices, converted)."""

        def ring(coords) -> list[list[float]]:
            return frame.to_lonlat(np.asarray(coords)).tolist()

        def poly(p: shapely.Polygon) -> list[list[list[float]]]:
            return [ring(p.exterior.coords)] + [ring(h.coords) for h in p.interiors]

        geometry: dict[str, Any]
        if isinstance(self.geometry, shapely.MultiPolygon):
            geometry = {
                "type": "MultiPolygon",
                "coordinates": [poly(p) for p in self.geometry.geoms],
            }
        else:
            geometry = {"type": "Polygon", "coordinates": poly(self.geometry)}
        props = dict(self.properties)
        props.update(name=self.name, kind=self.kind)
        if self.side_names is not None:
            props["side_names"] = (
                dict(self.side_names)
                if isinstance(self.side_names, Mapping)
                else list(self.side_names)
            )
        if self.axis_bearing is not None:
            props["axis_bearing"] = self.axis_bearing
        return {"type": "Feature", "properties": props, "geometry": geometry}


def _rings_to_local(
    rings: Any, frame: LocalFrame, densify_deg: float | None, where: str
) -> list[np.ndarray]:
    if not isinstance(rings, list) or not rings:
        raise ZoneError(f"{where}: a polygon needs a list of rings")
    out = []
    for r, ring in enumerate(rings):
        try:
            arr = np.asarray(ring, dtype=float)
        except (TypeError, ValueError):
            raise ZoneError(f"{where}: ring {r} is not a list of [lon, lat] positions") from None
        if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] < 4:
            raise ZoneError(f"{where}: ring {r} needs at least 4 [lon, lat] positions")
        arr = arr[:, :2]  # altitude, if any, is not used
        if (
            not np.isfinite(arr).all()
            or (np.abs(arr[:, 0]) > 180).any()
            or (np.abs(arr[:, 1]) > 90).any()
        ):
            raise ZoneError(
                f"{where}: ring {r} has positions outside lon [-180, 180], lat [-90, 90]"
            )
        if densify_deg:
            arr = shapely.get_coordinates(shapely.segmentize(shapely.linestrings(arr), densify_deg))
        out.append(frame.to_local(arr))
    return out


class ZoneSet:
    """The configured zones, in order; iterable and indexable by name.

    Parameters
    ----------
    zones : iterable of Zone
        Zones with unique names.
    """

    def __init__(self, zones: Iterable[Zone]):
        self._zones: dict[str, Zone] = {}
        for zone in zones:
            if not isinstance(zone, Zone):
                raise TypeError(f"ZoneSet holds Zone objects, got {type(zone).__name__}")
            if zone.name in self._zones:
                raise ZoneError(f"duplicate zone name {zone.name!r}")
            self._zones[zone.name] = zone

    def __iter__(self) -> Iterator[Zone]:
        return iter(self._zones.values())

    def __len__(self) -> int:
        return len(self._zones)

    def __getitem__(self, name: str) -> Zone:
        return self._zones[name]

    def __contains__(self, name: object) -> bool:
        return name in self._zones

    @property
    def names(self) -> list[str]:
        """Zone names in configuration order."""
        return list(self._zones)

    @classmethod
    def from_geojson(
        cls,
        source: Mapping[str, Any] | str | PathLike[str],
        frame: LocalFrame,
        densify_deg: float | None = _DEFAULT_DENSIFY_DEG,
    ) -> ZoneSet:
        """Load zones from a GeoJSON FeatureCollection (a dict or a file path).

        Each feature is a Polygon or MultiPolygon in WGS84 lon/lat (holes allowed).
        Properties: ``name`` (or the feature ``id``) required; ``kind`` (default
        ``"buffer"``), ``side_names``, ``axis_bearing`` optional; the rest is kept.

        Parameters
        ----------
        source : mapping or path
            A FeatureCollection or a single Feature, or the path of a file holding one.
        frame : LocalFrame
            The local frame the zones are converted to, once.
        densify_deg : float or None
            Longest edge, degrees, before projection (RFC 7946 edges are straight in
            lon/lat); ``None`` keeps the vertices as they are.

        Raises
        ------
        ZoneError
            Naming the feature (index and name) and what is wrong with it.
        """
        if isinstance(source, str | PathLike):
            path = Path(source)
            try:
                source = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ZoneError(f"cannot read zones from {str(path)!r}: {exc}") from None
        if not isinstance(source, Mapping):
            raise ZoneError(f"zones must be a GeoJSON object, got {type(source).__name__}")
        features: Any
        if source.get("type") == "Feature":
            features = [source]
        elif source.get("type") == "FeatureCollection":
            features = source.get("features")
            if not isinstance(features, list):
                raise ZoneError("FeatureCollection has no 'features' list")
        else:
            raise ZoneError(
                f"expected a GeoJSON FeatureCollection or Feature, got type {source.get('type')!r}"
            )
        zones = []
        for i, feat in enumerate(features):
            if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
                raise ZoneError(f"feature {i}: not a GeoJSON Feature")
            props = dict(feat.get("properties") or {})
            name = props.pop("name", feat.get("id"))
            where = f"feature {i} ({name!r})"
            if not isinstance(name, str):
                raise ZoneError(f"feature {i}: needs a string 'name' property (or feature 'id')")
            geom = feat.get("geometry")
            if not isinstance(geom, Mapping):
                raise ZoneError(f"{where}: has no geometry")
            gtype, coords = geom.get("type"), geom.get("coordinates")
            if gtype == "Polygon":
                rings = _rings_to_local(coords, frame, densify_deg, where)
                shape = shapely.Polygon(rings[0], rings[1:])
            elif gtype == "MultiPolygon":
                if not isinstance(coords, list) or not coords:
                    raise ZoneError(f"{where}: MultiPolygon needs a list of polygons")
                polys = []
                for j, pc in enumerate(coords):
                    rings = _rings_to_local(pc, frame, densify_deg, f"{where} polygon {j}")
                    polys.append(shapely.Polygon(rings[0], rings[1:]))
                shape = shapely.MultiPolygon(polys)
            else:
                raise ZoneError(f"{where}: geometry type {gtype!r} is not Polygon or MultiPolygon")
            kind = props.pop("kind", "buffer")
            if not isinstance(kind, str):
                raise ZoneError(f"{where}: 'kind' must be a string")
            zones.append(
                Zone(
                    name,
                    shape,
                    kind=kind,
                    side_names=props.pop("side_names", None),
                    axis_bearing=props.pop("axis_bearing", None),
                    properties=props,
                )
            )
        return cls(zones)

    def to_geojson(self, frame: LocalFrame) -> dict[str, Any]:
        """All zones as a GeoJSON FeatureCollection in lon/lat."""
        return {"type": "FeatureCollection", "features": [z.to_geojson(frame) for z in self]}


def _ring_edges(geometry: Any) -> np.ndarray:
    """Every boundary edge (exterior rings and holes) as rows ``ax, ay, bx, by``, (E, 4)."""
    polygons = geometry.geoms if isinstance(geometry, shapely.MultiPolygon) else [geometry]
    rings = [r for p in polygons for r in (p.exterior, *p.interiors)]
    parts = []
    for ring in rings:  # a handful of rings, once per zone
        xy = np.asarray(ring.coords, dtype=float)
        parts.append(np.hstack([xy[:-1], xy[1:]]))
    return np.vstack(parts)


# Segment x edge pairs per chunk in :func:`_first_crossing` (bounds its temporaries).
_CROSSING_CHUNK = 1 << 20


def _first_crossing(start: np.ndarray, delta: np.ndarray, edges: np.ndarray) -> np.ndarray:
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
    step = max(1, _CROSSING_CHUNK // max(edges.shape[0], 1))
    for lo in range(0, start.shape[0], step):  # chunks of segments, not one at a time
        px, py = start[lo : lo + step, :1], start[lo : lo + step, 1:]
        dx, dy = delta[lo : lo + step, :1], delta[lo : lo + step, 1:]
        denom = dx * ey - dy * ex  # cross(d, e)
        wx, wy = ax - px, ay - py  # a - p
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (wx * ey - wy * ex) / denom  # cross(a - p, e) / cross(d, e)
            u = (wx * dy - wy * dx) / denom  # cross(a - p, d) / cross(d, e)
        ok = (denom != 0) & (s >= 0) & (s <= 1) & (u >= 0) & (u <= 1)
        out[lo : lo + step] = np.where(ok, s, np.inf).min(axis=1)
    return out
