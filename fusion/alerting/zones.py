"""Zones: buffer-zone polygons in the local frame, and the vectorised geometry alerts need.

A zone is configured as GeoJSON (WGS84 lon/lat, RFC 7946) and converted once, at load
time, to the local east/north frame of :class:`fusion.geo.LocalFrame`. Everything the
alert engine asks of a zone is then a vectorised question over all tracks at once:

* :meth:`Zone.contains` -- is the point inside?
* :meth:`Zone.probability_inside` -- how likely is the track inside, given its
  position covariance (the half-plane approximation of
  :mod:`fusion.alerting.probability`)?
* :meth:`Zone.time_to_breach` -- when does the straight-line path enter the zone?
* :meth:`Zone.side` -- which of the zone's two sides is a point on?
* :meth:`Zone.measure` -- all of these at once for the alert engine, sharing the
  nearest-boundary computation.

The per-point geometry is numpy edge arithmetic (:mod:`fusion.alerting.polygon`), so
shapely only builds and checks the polygon once. Sides (which of its two sides a point
is on, and their names) are worked out in :mod:`fusion.alerting.sides`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from types import MappingProxyType
from typing import Any

import numpy as np
import shapely

from fusion.alerting import polygon, sides
from fusion.alerting.geojson import (
    DEFAULT_DENSIFY_DEG,
    ZoneError,
    read_zone_features,
    zone_feature,
)
from fusion.alerting.probability import (
    FAR_SIGMAS,
    box_distance,
    halfplane_probability,
    halfplane_probability_near,
    position_sigma_bound,
)
from fusion.geo import LocalFrame

__all__ = ["Zone", "ZoneError", "ZoneMeasures", "ZoneSet"]

# Zone names appear in ZeroMQ topics (alert.<zone>.<kind>) and in alert ids
# (<zone>:<kind>:<track>:<n>), so dots and colons are not allowed.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def _as_points(pos: np.ndarray, name: str = "pos") -> np.ndarray:
    pos = np.asarray(pos, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {pos.shape}")
    return pos


@dataclass(frozen=True)
class ZoneMeasures:
    """What the alert engine needs of one zone for M positions (see :meth:`Zone.measure`).

    Attributes
    ----------
    p_inside : ndarray, shape (M,)
        P(inside) from the position covariance.
    time_to_breach : ndarray, shape (M,)
        Seconds until the straight path enters (0 inside, ``inf`` beyond the horizon).
    distance : ndarray, shape (M,)
        Distance to the zone, metres (0 inside or on the boundary).
    side : ndarray, shape (M,), int8
        ``1`` positive side, ``-1`` negative side.
    normal : ndarray, shape (M, 2)
        Unit vector from the nearest boundary point towards the position (outward for
        positions outside; 0 on the boundary), for breach probabilities.
    """

    p_inside: np.ndarray
    time_to_breach: np.ndarray
    distance: np.ndarray
    side: np.ndarray
    normal: np.ndarray


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
        axis = sides.long_axis(geom, self.axis_bearing, self.name)
        normal, compass = sides.orient(axis)
        names = sides.resolve_names(self.side_names, compass, self.name)
        chains = sides.side_chains(geom, axis, normal)
        set_ = object.__setattr__
        set_(self, "properties", MappingProxyType(dict(self.properties)))
        edges = np.vstack([polygon.ring_edges(geom), *chains])
        set_(self, "_edges", polygon.EdgeTable(edges, (len(chains[0]), len(chains[1]))))
        set_(self, "_bounds", np.asarray(geom.bounds, dtype=float))
        set_(self, "_axis", axis)
        set_(self, "_normal", normal)
        set_(self, "_centre", np.asarray(geom.centroid.coords[0], dtype=float))
        set_(self, "_sides", names)
        set_(self, "_compass", compass)

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
    def bounds(self) -> np.ndarray:
        """Bounding box ``x0, y0, x1, y1`` (east/north metres), shape (4,); do not modify."""
        return self._bounds  # type: ignore[attr-defined]

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
        return box_distance(_as_points(pos), self._bounds) <= margin  # type: ignore[attr-defined]

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
        d, _, _ = self._edges.nearest(points)  # type: ignore[attr-defined]
        return self._edges.inside(points) & (d > 0)  # type: ignore[attr-defined]

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Distance to the zone, metres: 0 inside or on the boundary.

        Parameters
        ----------
        points : ndarray, shape (N, 2)

        Returns
        -------
        ndarray, shape (N,), float64
        """
        return np.maximum(-self.signed_distance(points), 0.0)

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
        edges: polygon.EdgeTable = self._edges  # type: ignore[attr-defined]
        d, _, _ = edges.nearest(points)
        return np.where(edges.inside(points), d, -d)

    def probability_inside(self, pos: np.ndarray, P_pos: np.ndarray) -> np.ndarray:
        """Probability that a Gaussian position lies inside, ``Phi(d / sigma)``.

        ``d`` is the signed distance to the nearest boundary point (positive inside) and
        ``sigma^2 = n' P n`` the variance along the boundary normal ``n`` through the
        point: the half-plane approximation of :mod:`fusion.alerting.probability`.

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
        idx = np.flatnonzero(self.near(pos, FAR_SIGMAS * position_sigma_bound(P_pos)))
        if idx.size:
            pts = pos[idx]
            d, q, _ = self._edges.nearest(pts)  # type: ignore[attr-defined]
            inside = self._edges.inside(pts) & (d > 0)  # type: ignore[attr-defined]
            p[idx] = halfplane_probability(pts, q, d, inside, P_pos[idx])
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
        pts, h = pos[cand], horizon[cand]
        d, _, _ = self._edges.nearest(pts)  # type: ignore[attr-defined]
        on = self._edges.inside(pts) | (d == 0)  # type: ignore[attr-defined]
        ttb[cand] = np.where(on, 0.0, np.inf)
        # The start is outside, so the first boundary crossing along the path is the
        # entry: s in [0, 1] along pos -> pos + vel * horizon, time s * horizon.
        move = (~on & (speed[cand] > 0) & (h > 0)).nonzero()[0]
        s = self._edges.first_crossing(pts[move], vel[cand[move]] * h[move, None])  # type: ignore[attr-defined]
        ttb[cand[move]] = s * h[move]
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
        _, _, (d_pos, d_neg) = self._edges.nearest(points)  # type: ignore[attr-defined]
        return sides.nearer_side(points, d_pos, d_neg, self._centre, self._normal)  # type: ignore[attr-defined]

    def measure(
        self,
        pos: np.ndarray,
        P_pos: np.ndarray,
        vel: np.ndarray,
        horizon: float,
        box: np.ndarray | None = None,
        speed: np.ndarray | None = None,
        sigma: np.ndarray | None = None,
    ) -> ZoneMeasures:
        """P(inside), time to breach, distance and side of M positions in one pass.

        The same as :meth:`probability_inside`, :meth:`time_to_breach`,
        :meth:`distance` and :meth:`side`, sharing one nearest-boundary and one inside
        test.

        Parameters
        ----------
        pos : ndarray, shape (M, 2)
        P_pos : ndarray, shape (M, 2, 2)
        vel : ndarray, shape (M, 2)
        horizon : float
            Look-ahead for the time to breach, seconds.
        box, speed, sigma : ndarray, shape (M,), optional
            Distance of each position to the zone's bounding box, ``hypot`` of ``vel``
            and :func:`position_sigma_bound` of ``P_pos``, where already known.

        Returns
        -------
        ZoneMeasures
        """
        edges = self._edges  # type: ignore[attr-defined]
        d, q, (d_pos, d_neg) = edges.nearest(pos)
        off = d > 0  # not on the boundary
        strictly = edges.inside(pos) & off
        on = strictly | (d == 0)
        box = box_distance(pos, self._bounds) if box is None else box  # type: ignore[attr-defined]
        sigma = position_sigma_bound(P_pos) if sigma is None else sigma
        speed = np.hypot(vel[:, 0], vel[:, 1]) if speed is None else speed
        # Unit normals from the nearest boundary point, for P(inside) and breaches.
        normal = np.divide(pos - q, d[:, None], out=np.zeros_like(pos), where=off[:, None])
        p_in = halfplane_probability_near(normal, d, strictly, P_pos, box, sigma)
        ttb = np.where(on, 0.0, np.inf)
        if horizon > 0:
            # Outside, moving, and within reach of the box: the first boundary crossing
            # along pos -> pos + vel * horizon is the entry.
            move = (~on & (speed > 0) & (box <= speed * horizon)).nonzero()[0]
            s = edges.first_crossing(pos[move], vel[move] * horizon)
            ttb[move] = s * horizon
        side = sides.nearer_side(pos, d_pos, d_neg, self._centre, self._normal)  # type: ignore[attr-defined]
        return ZoneMeasures(p_in, ttb, np.where(on, 0.0, d), side, normal)

    # ------------------------------------------------------------------- GeoJSON

    def to_geojson(self, frame: LocalFrame) -> dict[str, Any]:
        """This zone as a GeoJSON Feature in lon/lat (the local vertices, converted)."""
        return zone_feature(self, frame)


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
        densify_deg: float | None = DEFAULT_DENSIFY_DEG,
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
        return cls(Zone(**spec) for spec in read_zone_features(source, frame, densify_deg))

    def to_geojson(self, frame: LocalFrame) -> dict[str, Any]:
        """All zones as a GeoJSON FeatureCollection in lon/lat."""
        return {"type": "FeatureCollection", "features": [z.to_geojson(frame) for z in self]}
