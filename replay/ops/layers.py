"""The static map under the live picture: zones and sensors (position, coverage) in lon/lat.

Zones come from a scenario or a GeoJSON file; sensors only from a scenario (a live
deployment's sensor list is not known to the subscriber). Coverage is drawn from each
sensor's specification: a radar's range/azimuth sector, a ground sensor's circle, a
satellite's nominal swath, a drone's route (its footprint moves along it).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.geo import LocalFrame


@dataclass(frozen=True, eq=False)
class Layers:
    """What the map shows that does not move.

    Attributes
    ----------
    frame : LocalFrame
        The tracker's local frame (its origin centres the map).
    zones : dict
        GeoJSON FeatureCollection, lon/lat, as configured.
    sensors : list of dict
        ``{"id", "kind", "position": [lon, lat] | None, "coverage": [[lon, lat], ...] | None,
        "route": [[lon, lat], ...] | None}``.
    name : str
    """

    frame: LocalFrame
    zones: dict[str, Any]
    sensors: list[dict[str, Any]] = field(default_factory=list)
    name: str = ""

    @property
    def origin(self) -> tuple[float, float]:
        return (self.frame.lon0, self.frame.lat0)

    @classmethod
    def from_scenario(cls, scenario: Any) -> Layers:
        """Zones and sensors of a :class:`sensors.scenario.Scenario`."""
        frame = scenario.frame
        sensors = [_sensor_layer(spec, frame) for spec in scenario.sensors]
        return cls(frame, scenario.zones_geojson(), sensors, scenario.name)

    @classmethod
    def from_zones_file(cls, path: str | Path, origin: tuple[float, float]) -> Layers:
        """Zones from a GeoJSON file around ``origin``; no sensors."""
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(LocalFrame(*origin), doc, [], Path(path).stem)

    @classmethod
    def from_metadata(cls, scenario_meta: dict[str, Any]) -> Layers:
        """From a recording header's ``scenario`` entry; sensors when its source loads."""
        origin = scenario_meta["origin"]
        frame = LocalFrame(float(origin[0]), float(origin[1]))
        sensors: list[dict[str, Any]] = []
        source = scenario_meta.get("source")
        if source and not str(source).startswith("<"):
            try:
                from sensors.scenario import load_scenario

                sensors = [_sensor_layer(s, frame) for s in load_scenario(source).sensors]
            except (OSError, ValueError):
                sensors = []  # the map still has its zones
        zones = copy.deepcopy(scenario_meta.get("zones") or {"type": "FeatureCollection",
                                                              "features": []})
        return cls(frame, zones, sensors, str(scenario_meta.get("name", "")))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": list(self.origin),
            "zones": self.zones,
            "sensors": self.sensors,
        }


def _lonlat(frame: LocalFrame, en: np.ndarray | None) -> list[list[float]] | None:
    if en is None:
        return None
    pts = frame.to_lonlat(np.asarray(en, dtype=float).reshape(-1, 2))
    return [[round(float(lon), 7), round(float(lat), 7)] for lon, lat in pts]


def _sensor_layer(spec: Any, frame: LocalFrame) -> dict[str, Any]:
    """One sensor spec as a map layer entry (coverage polygons in lon/lat, not closed)."""
    from sensors import shapes

    cover: np.ndarray | None = None
    position: np.ndarray | None = None
    route: np.ndarray | None = None
    if spec.kind == "radar":
        r_min, r_max = spec.range
        position = np.asarray(spec.position, dtype=float)
        cover = shapes.sector(position, r_min, r_max, spec.azimuth, spec.width)
    elif spec.kind == "ugs":
        position = np.asarray(spec.position, dtype=float)
        cover = shapes.circle(position, spec.radius, 24)
    elif spec.kind == "satellite":
        position = np.asarray(spec.center, dtype=float)
        cover = shapes.rectangle(position, spec.heading, spec.length, spec.width)
    elif spec.kind == "drone":
        route = np.asarray(spec.route, dtype=float)
        position = route[0]
    pos = _lonlat(frame, position)
    return {
        "id": spec.id,
        "kind": spec.kind,
        "position": pos[0] if pos else None,
        "coverage": _lonlat(frame, cover),
        "route": _lonlat(frame, route),
    }
