"""The local east/north frame and its conversion to and from WGS84 lon/lat.

The tracker works in metres in a local frame around a configured origin; geography
(GeoJSON zones, lon/lat in alerts) is converted once, at the edges. The frame is an
azimuthal equidistant projection centred on the origin (pyproj ``+proj=aeqd``): east
and north at the origin, distances from the origin exact, and distortion under 0.1 %
within a few hundred kilometres, far below sensor errors. Past that, split the zone
into sectors with their own origins (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer


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
