"""RFC 7946 GeoJSON of zones, sensors, tracks and alerts, for GIS tools.

RFC 7946 asks for ``[longitude, latitude]`` positions in WGS84, closed linear rings
(first position repeated last), exterior rings counter-clockwise and holes clockwise
(section 3.1.6, the right-hand rule). Zone files written by hand often break the last
two, so every polygon passes through :func:`rfc7946_polygon` on its way out.
Coordinates are rounded to 7 decimals (about 1 cm), as section 11.2 suggests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from replay.ops.layers import Layers

DECIMALS = 7


def signed_area(ring: Sequence[Sequence[float]]) -> float:
    """Shoelace area of a ring in its own units; > 0 when counter-clockwise."""
    pts = np.asarray(ring, dtype=float)[:, :2]
    x, y = pts[:, 0], pts[:, 1]
    # A = 1/2 sum(x_i y_{i+1} - x_{i+1} y_i), the ring closed back on itself
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def close_ring(ring: Sequence[Sequence[float]]) -> list[list[float]]:
    """The ring with its first position repeated last (once), rounded."""
    pts = [[round(float(p[0]), DECIMALS), round(float(p[1]), DECIMALS)] for p in ring]
    if pts and pts[0] != pts[-1]:
        pts.append(list(pts[0]))
    return pts


def rfc7946_polygon(rings: Sequence[Sequence[Sequence[float]]]) -> list[list[list[float]]]:
    """Rings closed, exterior counter-clockwise, holes clockwise."""
    out = []
    for i, ring in enumerate(rings):
        closed = close_ring(ring)
        ccw = signed_area(closed) > 0
        if ccw != (i == 0):
            closed.reverse()
        out.append(closed)
    return out


def _geometry(geom: dict[str, Any]) -> dict[str, Any]:
    kind = geom.get("type")
    if kind == "Polygon":
        return {"type": "Polygon", "coordinates": rfc7946_polygon(geom["coordinates"])}
    if kind == "MultiPolygon":
        return {
            "type": "MultiPolygon",
            "coordinates": [rfc7946_polygon(p) for p in geom["coordinates"]],
        }
    return geom


def collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def point(lon: float, lat: float, properties: dict[str, Any], fid: Any = None) -> dict[str, Any]:
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": {"type": "Point",
                     "coordinates": [round(float(lon), DECIMALS), round(float(lat), DECIMALS)]},
        "properties": properties,
    }
    if fid is not None:
        feature["id"] = fid
    return feature


def zones_collection(layers: Layers) -> dict[str, Any]:
    """The zones, geometry made RFC 7946-conformant, properties kept."""
    features = []
    for f in layers.zones.get("features", []):
        geom = f.get("geometry") or {}
        features.append(
            {"type": "Feature", "geometry": _geometry(geom),
             "properties": dict(f.get("properties") or {})}
        )
    return collection(features)


def sensors_collection(layers: Layers) -> dict[str, Any]:
    """Each sensor's coverage (Polygon) or route (LineString) or position (Point)."""
    features = []
    for s in layers.sensors:
        props = {"id": s["id"], "kind": s["kind"]}
        if s.get("coverage"):
            geom: dict[str, Any] = {"type": "Polygon",
                                    "coordinates": rfc7946_polygon([s["coverage"]])}
        elif s.get("route"):
            geom = {"type": "LineString", "coordinates": close_ring(s["route"])}
        elif s.get("position"):
            geom = {"type": "Point", "coordinates": s["position"]}
        else:
            continue
        features.append({"type": "Feature", "geometry": geom, "properties": props})
    return collection(features)


TRACK_PROPERTIES = ("cls", "conf", "speed", "heading", "v_east", "v_north", "east", "north",
                    "time_utc", "t_epoch", "degraded")


def tracks_collection(tracks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Confirmed tracks as Points (``id`` is the track id), kinematics in properties."""
    return collection(
        point(t["lon"], t["lat"], {"track_id": t["id"],
                                   **{k: t.get(k) for k in TRACK_PROPERTIES}}, t["id"])
        for t in tracks
    )


ALERT_PROPERTIES = ("alert_id", "kind", "event", "severity", "zone", "track_id", "sensor",
                    "cls", "conf", "p_inside", "speed", "time_to_breach", "side", "evidence",
                    "time_utc", "t_epoch", "t", "run", "seq")


def alerts_collection(alerts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Alerts as Points at their position; alerts without a lon/lat are left out."""
    features = []
    for a in alerts:
        pos = a.get("position") or {}
        if pos.get("lon") is None or pos.get("lat") is None:
            continue
        props = {k: a.get(k) for k in ALERT_PROPERTIES if k in a}
        features.append(point(pos["lon"], pos["lat"], props, a.get("alert_id")))
    return collection(features)


def track_paths_collection(paths: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Whole track histories (an exported result) as LineStrings, or Points if one fix.

    ``paths``: track id -> ``{"coordinates": [[lon, lat], ...], "t_start", "t_end",
    "cls", ...}``.
    """
    features = []
    for tid, p in sorted(paths.items()):
        coords = [[round(float(a), DECIMALS), round(float(b), DECIMALS)]
                  for a, b in p["coordinates"]]
        props = {k: v for k, v in p.items() if k != "coordinates"}
        props["track_id"] = tid
        geom = (
            {"type": "LineString", "coordinates": coords}
            if len(coords) >= 2
            else {"type": "Point", "coordinates": coords[0]}
        )
        features.append({"type": "Feature", "id": tid, "geometry": geom, "properties": props})
    return collection(features)
