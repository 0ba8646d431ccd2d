"""Reading zones from GeoJSON (RFC 7946, WGS84 lon/lat) into the local frame.

Each feature becomes the keyword arguments of one :class:`fusion.alerting.zones.Zone`:
its rings are densified in lon/lat (RFC 7946 edges are straight there), projected once
to local east/north metres, and every problem is reported with the feature's index and
name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from fusion.geo import LocalFrame

__all__ = ["DEFAULT_DENSIFY_DEG", "ZoneError", "read_zone_features", "zone_feature"]

# RFC 7946 edges are straight in lon/lat; densify them before projecting so that the
# local polygon follows them (0.01 deg is about 1 km).
DEFAULT_DENSIFY_DEG = 0.01


class ZoneError(ValueError):
    """A zone definition that cannot be used; the message names the zone or feature."""


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


def _features(source: Mapping[str, Any] | str | PathLike[str]) -> list[Any]:
    """The features of a FeatureCollection or single Feature (a dict or a file path)."""
    if isinstance(source, str | PathLike):
        path = Path(source)
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ZoneError(f"cannot read zones from {str(path)!r}: {exc}") from None
    if not isinstance(source, Mapping):
        raise ZoneError(f"zones must be a GeoJSON object, got {type(source).__name__}")
    if source.get("type") == "Feature":
        return [source]
    if source.get("type") == "FeatureCollection":
        features = source.get("features")
        if not isinstance(features, list):
            raise ZoneError("FeatureCollection has no 'features' list")
        return features
    raise ZoneError(
        f"expected a GeoJSON FeatureCollection or Feature, got type {source.get('type')!r}"
    )


def _local_shape(
    geom: Any, frame: LocalFrame, densify_deg: float | None, where: str
) -> shapely.Polygon | shapely.MultiPolygon:
    if not isinstance(geom, Mapping):
        raise ZoneError(f"{where}: has no geometry")
    gtype, coords = geom.get("type"), geom.get("coordinates")
    if gtype == "Polygon":
        rings = _rings_to_local(coords, frame, densify_deg, where)
        return shapely.Polygon(rings[0], rings[1:])
    if gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise ZoneError(f"{where}: MultiPolygon needs a list of polygons")
        polys = []
        for j, pc in enumerate(coords):
            rings = _rings_to_local(pc, frame, densify_deg, f"{where} polygon {j}")
            polys.append(shapely.Polygon(rings[0], rings[1:]))
        return shapely.MultiPolygon(polys)
    raise ZoneError(f"{where}: geometry type {gtype!r} is not Polygon or MultiPolygon")


def read_zone_features(
    source: Mapping[str, Any] | str | PathLike[str],
    frame: LocalFrame,
    densify_deg: float | None = DEFAULT_DENSIFY_DEG,
) -> list[dict[str, Any]]:
    """Each feature's zone, as ``Zone`` keyword arguments in the local frame.

    Parameters
    ----------
    source : mapping or path
        A FeatureCollection or a single Feature, or the path of a file holding one.
    frame : LocalFrame
        The local frame the zones are converted to, once.
    densify_deg : float or None
        Longest edge, degrees, before projection; ``None`` keeps the vertices.

    Returns
    -------
    list of dict
        ``name``, ``geometry`` (local shapely polygon), ``kind``, ``side_names``,
        ``axis_bearing``, ``properties`` (the remaining GeoJSON properties).

    Raises
    ------
    ZoneError
        Naming the feature (index and name) and what is wrong with it.
    """
    zones = []
    for i, feat in enumerate(_features(source)):
        if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
            raise ZoneError(f"feature {i}: not a GeoJSON Feature")
        props = dict(feat.get("properties") or {})
        name = props.pop("name", feat.get("id"))
        where = f"feature {i} ({name!r})"
        if not isinstance(name, str):
            raise ZoneError(f"feature {i}: needs a string 'name' property (or feature 'id')")
        shape = _local_shape(feat.get("geometry"), frame, densify_deg, where)
        kind = props.pop("kind", "buffer")
        if not isinstance(kind, str):
            raise ZoneError(f"{where}: 'kind' must be a string")
        zones.append(
            {
                "name": name,
                "geometry": shape,
                "kind": kind,
                "side_names": props.pop("side_names", None),
                "axis_bearing": props.pop("axis_bearing", None),
                "properties": props,
            }
        )
    return zones


def zone_feature(zone: Any, frame: LocalFrame) -> dict[str, Any]:
    """A zone as a GeoJSON Feature in lon/lat (its local vertices, converted)."""

    def ring(coords) -> list[list[float]]:
        return frame.to_lonlat(np.asarray(coords)).tolist()

    def poly(p: shapely.Polygon) -> list[list[list[float]]]:
        return [ring(p.exterior.coords)] + [ring(h.coords) for h in p.interiors]

    geometry: dict[str, Any]
    if isinstance(zone.geometry, shapely.MultiPolygon):
        geometry = {
            "type": "MultiPolygon",
            "coordinates": [poly(p) for p in zone.geometry.geoms],
        }
    else:
        geometry = {"type": "Polygon", "coordinates": poly(zone.geometry)}
    props = dict(zone.properties)
    props.update(name=zone.name, kind=zone.kind)
    if zone.side_names is not None:
        props["side_names"] = (
            dict(zone.side_names) if isinstance(zone.side_names, Mapping) else list(zone.side_names)
        )
    if zone.axis_bearing is not None:
        props["axis_bearing"] = zone.axis_bearing
    return {"type": "Feature", "properties": props, "geometry": geometry}
