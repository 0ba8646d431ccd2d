"""The local east/north frame and its conversion to and from WGS84 lon/lat.

The tracker works in metres in a local frame around a configured origin; geography
(GeoJSON zones, lon/lat in alerts) is converted once, at the edges. The frame is an
azimuthal equidistant projection centred on the origin (pyproj ``+proj=aeqd``): east
and north at the origin, distances from the origin exact, and distortion under 0.1 %
within a few hundred kilometres, far below sensor errors. Past that, split the zone
into sectors with their own origins (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyproj import Transformer

# Mean Earth radius (IUGG), metres: enough for a plausibility distance.
_EARTH_RADIUS_M = 6_371_008.8
# A local frame is meant for a zone within a few hundred kilometres of its origin (see
# the module docstring); anything farther is far more likely a wrong coordinate order
# or a wrong origin than a real zone.
MAX_ZONE_DISTANCE_KM = 200.0


class ImplausibleCoordinates(ValueError):
    """Lon/lat coordinates that cannot belong to the frame's origin (often lat/lon swapped)."""


@dataclass(frozen=True)
class LocalFrame:
    """East/north metres around ``(lon0, lat0)`` on WGS84.

    Parameters
    ----------
    lon0, lat0 : float
        Origin of the frame in degrees.
    """

    lon0: float
    lat0: float
    _forward: Transformer = field(init=False, repr=False, compare=False)
    _inverse: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (-180.0 <= self.lon0 <= 180.0 and -90.0 < self.lat0 < 90.0):
            raise ValueError(f"origin ({self.lon0}, {self.lat0}) is not a valid lon/lat")
        # pyproj is imported here, not at module level: the command line imports this
        # module for the plausibility check without paying for PROJ's start-up.
        from pyproj import CRS, Transformer

        local = CRS.from_proj4(
            f"+proj=aeqd +lat_0={self.lat0!r} +lon_0={self.lon0!r} +datum=WGS84 +units=m"
        )
        object.__setattr__(
            self, "_forward", Transformer.from_crs("EPSG:4326", local, always_xy=True)
        )
        object.__setattr__(
            self, "_inverse", Transformer.from_crs(local, "EPSG:4326", always_xy=True)
        )

    def to_local(self, lonlat: np.ndarray) -> np.ndarray:
        """Convert lon/lat degrees, shape (..., 2), to east/north metres, shape (..., 2)."""
        lonlat = np.asarray(lonlat, dtype=float)
        east, north = self._forward.transform(lonlat[..., 0], lonlat[..., 1])
        return np.stack([np.asarray(east), np.asarray(north)], axis=-1)

    def to_lonlat(self, en: np.ndarray) -> np.ndarray:
        """Convert east/north metres, shape (..., 2), to lon/lat degrees, shape (..., 2)."""
        en = np.asarray(en, dtype=float)
        lon, lat = self._inverse.transform(en[..., 0], en[..., 1])
        return np.stack([np.asarray(lon), np.asarray(lat)], axis=-1)


def distance_km(lonlat: np.ndarray, origin: Sequence[float]) -> np.ndarray:
    """Great-circle distance of lon/lat points from ``origin``, kilometres (haversine).

    Parameters
    ----------
    lonlat : ndarray, shape (..., 2), float
        Degrees, longitude first.
    origin : (float, float)
        ``(lon, lat)`` degrees.

    Returns
    -------
    ndarray, shape (...), float64
    """
    pts = np.radians(np.asarray(lonlat, dtype=float))
    lon0, lat0 = np.radians(float(origin[0])), np.radians(float(origin[1]))
    dlat = pts[..., 1] - lat0
    dlon = pts[..., 0] - lon0
    # a = sin^2(dlat/2) + cos(lat0) cos(lat) sin^2(dlon/2)
    a = np.sin(dlat / 2) ** 2 + np.cos(lat0) * np.cos(pts[..., 1]) * np.sin(dlon / 2) ** 2
    return 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))) / 1e3


def check_near_origin(
    lonlat: np.ndarray,
    origin: Sequence[float],
    what: str = "zone",
    max_km: float = MAX_ZONE_DISTANCE_KM,
) -> None:
    """Refuse lon/lat coordinates that cannot be meant for a frame around ``origin``.

    GeoJSON and this project write ``[lon, lat]``; most map tools and people write
    lat/lon. Swapped coordinates are still valid degrees almost everywhere, so they
    would be accepted and put the zone hundreds of kilometres away, where no track ever
    enters it. Two signs give them away: a point farther than ``max_km`` from the
    origin, or a ring that would sit much closer to the origin with the two numbers
    exchanged.

    Parameters
    ----------
    lonlat : ndarray, shape (K, 2), float
        The coordinates as given, degrees, longitude first.
    origin : (float, float)
        ``(lon, lat)`` of the local frame, degrees.
    what : str
        Names the coordinates in the message, e.g. ``"zone 'zone-a'"``.
    max_km : float
        Farthest plausible distance from the origin, kilometres.

    Raises
    ------
    ImplausibleCoordinates
        Saying how far the coordinates are and, when swapping them fits, asking
        "did you swap lat/lon?".
    """
    pts = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    if pts.size == 0:
        return
    given_ok = (np.abs(pts[:, 0]) <= 180.0).all() and (np.abs(pts[:, 1]) <= 90.0).all()
    swapped = pts[:, ::-1]
    swapped_ok = (np.abs(swapped[:, 0]) <= 180.0).all() and (np.abs(swapped[:, 1]) <= 90.0).all()
    far = float(distance_km(pts, origin).max()) if given_ok else np.inf
    far_swapped = float(distance_km(swapped, origin).max()) if swapped_ok else np.inf
    where = f"origin ({float(origin[0]):g}, {float(origin[1]):g})"
    first = f"({pts[0, 0]:g}, {pts[0, 1]:g})"
    # Swapping fits when it lands within reach and much nearer: a real zone a few km
    # across is never a quarter as far away with its numbers exchanged.
    swap_fits = far_swapped <= max_km and far_swapped < far / 4 and far > 5.0
    if swap_fits:
        raise ImplausibleCoordinates(
            f"{what}: coordinates such as {first} lie "
            + (f"{far:.0f} km" if np.isfinite(far) else "nowhere valid")
            + f" from the {where}, but {far_swapped:.0f} km with the two numbers exchanged: "
            "did you swap lat/lon? Coordinates are [lon, lat] (GeoJSON order)"
        )
    if not given_ok:
        raise ImplausibleCoordinates(
            f"{what}: {first} is not a valid [lon, lat] (longitude within +-180, "
            "latitude within +-90); did you swap lat/lon?"
        )
    if far > max_km:
        raise ImplausibleCoordinates(
            f"{what}: coordinates such as {first} lie {far:.0f} km from the {where} "
            f"(more than {max_km:g} km): is the origin right, or did you swap lat/lon? "
            "Coordinates are [lon, lat] (GeoJSON order)"
        )


def geojson_lonlat(obj: object) -> np.ndarray:
    """Every coordinate pair in a GeoJSON object, shape (K, 2), for :func:`check_near_origin`.

    Walks Features, FeatureCollections and geometries of any kind without judging their
    structure (that is the zone loader's job); malformed parts are skipped.
    """
    out: list[tuple[float, float]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("features", "geometry", "geometries", "coordinates"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list | tuple):
            if (
                len(node) >= 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in node[:2])
            ):
                out.append((float(node[0]), float(node[1])))
            else:
                for item in node:
                    walk(item)

    walk(obj)
    return np.asarray(out, dtype=float).reshape(-1, 2)
