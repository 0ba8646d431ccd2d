"""Scenario files: the area, the buffer zone, the targets and the sensors, as TOML.

A scenario is everything the simulation needs; the same file and seed give the same
truth and the same detections, bit for bit. Positions are east/north metres in the
local frame around ``origin`` unless a field says ``lonlat``: a zone's ``lonlat``, and
any sensor point given as ``<key>_lonlat`` (``position_lonlat``, ``center_lonlat``,
``waypoints_lonlat``, ``line_lonlat``), in ``[lon, lat]`` degrees. Lon/lat that cannot
belong to ``origin`` (typically lat/lon swapped) is refused. Bearings and headings
are compass degrees (clockwise from north). Times are scenario seconds from 0. Every
key is described in ``docs/SCENARIOS.md``.

Layout (see ``sensors/data/default.toml`` for a full example)::

    name = "default"          seed = 7          duration = 900.0     truth_dt = 1.0
    origin = [lon, lat]
    area = [[east_min, north_min], [east_max, north_max]]

    [[zones]]                 # name, kind, sides = [name of +w side, name of -w side]
    local = [[e, n], ...]     # or lonlat = [[lon, lat], ...], or geojson = "file.geojson"

    [[targets]]               # a group: name, cls, behaviour, count, and its ranges
    [[sensors]]               # id, kind (radar | drone | satellite | ugs), and its model

Every problem is reported as :class:`ScenarioError` naming the field
(``sensors[3].rate``) so the file can be fixed without reading this code.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from fusion.config import REQUIRED, ConfigError, Table, check_number
from fusion.geo import ImplausibleCoordinates, LocalFrame, check_near_origin
from fusion.messages import CLASSES, SENSOR_KINDS
from sensors.shapes import ZoneFrame, racetrack

TARGET_CLASSES = ("person", "vehicle", "drone")
BEHAVIOURS = ("patrol", "wander", "probe", "cross", "loiter")
_SENSOR_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}\Z")
_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")

# Speeds by class when a group does not give its own, metres per second.
DEFAULT_SPEED = {"person": (1.0, 2.0), "vehicle": (5.0, 25.0), "drone": (10.0, 30.0)}
# Straight-leg lengths by class for patrols and wandering, metres.
DEFAULT_LEG = {"person": (200.0, 600.0), "vehicle": (800.0, 2500.0), "drone": (1000.0, 3000.0)}


class ScenarioError(ConfigError):
    """A scenario that cannot be used, with the field at fault.

    Parameters
    ----------
    field : str
        Dotted path of the field, e.g. ``"sensors[2].rate"``.
    message : str
        What is wrong with it.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"scenario field {field!r}: {message}", field)

    @classmethod
    def at(cls, field: str, message: str) -> ScenarioError:
        return cls(field, message)


# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True, eq=False)
class ZoneSpec:
    """One zone in the local frame.

    Attributes
    ----------
    name, kind : str
    sides : tuple of str
        Names of the zone's ``+w`` and ``-w`` sides (see :class:`sensors.shapes.ZoneFrame`).
    local : ndarray, shape (K, 2), float64
        Exterior ring in east/north metres, not closed.
    """

    name: str
    kind: str
    sides: tuple[str, str]
    local: np.ndarray


@dataclass(frozen=True)
class TargetGroup:
    """A group of targets that share a class and a behaviour.

    Ranges are ``(low, high)`` and each target draws its own value uniformly.
    ``along`` is a fraction of the zone's length; ``offset`` and ``stop`` are metres
    outside the zone's edge; ``birth`` and ``lifetime`` are seconds (``lifetime`` None
    means until the behaviour ends or the scenario does; a negative ``birth`` means
    the target is already under way when the scenario starts). ``convoy`` > 1 makes each
    target the leader of that many vehicles on the same path, ``spacing`` metres apart
    along it (they halt queued behind the leader when it halts).
    """

    name: str
    cls: str
    behaviour: str
    count: int
    zone: str
    side: str
    speed: tuple[float, float]
    offset: tuple[float, float]
    along: tuple[float, float]
    birth: tuple[float, float]
    lifetime: tuple[float, float] | None
    leg: tuple[float, float]
    loiter: tuple[float, float]
    stop: tuple[float, float]
    convoy: int
    spacing: float


@dataclass(frozen=True)
class SensorSpec:
    """What every sensor has.

    ``pd`` is the probability of detection per class index of
    :data:`fusion.messages.CLASSES`; ``clutter`` the mean number of false alarms per
    frame (Poisson, uniform inside the coverage); ``latency`` the delivery delay range
    in seconds, drawn uniformly per frame.
    """

    id: str
    kind: str
    pd: tuple[float, float, float, float]
    clutter: float
    latency: tuple[float, float]


@dataclass(frozen=True)
class RadarSpec(SensorSpec):
    """Fixed ground radar: scans a range/azimuth sector ``rate`` times a second."""

    position: tuple[float, float]
    rate: float
    range: tuple[float, float]
    azimuth: float
    width: float
    sigma_range: float
    sigma_bearing: float


@dataclass(frozen=True, eq=False)
class DroneSpec(SensorSpec):
    """A drone flying a closed route with a downward camera; ``rate`` frames a second.

    ``route`` holds the loop's vertices (a racetrack is expanded at load). The camera
    footprint is ``footprint = (along track, across track)`` metres, centred below it.
    """

    route: np.ndarray
    speed: float
    phase: float
    rate: float
    footprint: tuple[float, float]
    sigma: float
    class_accuracy: float


@dataclass(frozen=True)
class SatelliteSpec(SensorSpec):
    """One swath snapshot per pass, every ``revisit`` seconds from ``first_pass``.

    The swath is a rectangle (``center``, ``heading``, ``length``, ``width``) whose
    ground track shifts across by up to ``shift`` metres from pass to pass.
    ``class_accuracy`` None means no class labels.
    """

    revisit: float
    first_pass: float
    center: tuple[float, float]
    heading: float
    length: float
    width: float
    shift: float
    sigma: float
    class_accuracy: float | None


@dataclass(frozen=True)
class UgsSpec(SensorSpec):
    """Unattended ground sensor: one detection at its own position when anything stirs."""

    position: tuple[float, float]
    radius: float
    rate: float


# ---------------------------------------------------------------------------- scenario


@dataclass(frozen=True, eq=False)
class Scenario:
    """A loaded, validated scenario. Build it with :meth:`load` or :func:`load_default`.

    Attributes
    ----------
    name : str
    origin : tuple of float
        (lon, lat) of the local frame, degrees.
    area : tuple of float
        (east_min, north_min, east_max, north_max), metres.
    duration, truth_dt : float
        Seconds; truth is sampled every ``truth_dt``.
    seed : int
    zones : dict
        GeoJSON FeatureCollection in lon/lat; properties ``name``, ``kind``, ``sides``.
    zone_specs : tuple of ZoneSpec
        The same zones in the local frame.
    targets : tuple of TargetGroup
    sensors : tuple of SensorSpec
    source : str
        Where it was loaded from.
    """

    name: str
    origin: tuple[float, float]
    area: tuple[float, float, float, float]
    duration: float
    seed: int
    truth_dt: float
    zones: dict[str, Any]
    zone_specs: tuple[ZoneSpec, ...]
    targets: tuple[TargetGroup, ...]
    sensors: tuple[SensorSpec, ...]
    source: str = "<memory>"

    @cached_property
    def frame(self) -> LocalFrame:
        """The local east/north frame around :attr:`origin`."""
        return LocalFrame(*self.origin)

    def zones_geojson(self) -> dict[str, Any]:
        """The zones as a GeoJSON FeatureCollection in lon/lat (a fresh copy)."""
        return copy.deepcopy(self.zones)

    def zone(self, name: str) -> ZoneSpec:
        """The zone called ``name``."""
        for z in self.zone_specs:
            if z.name == name:
                return z
        raise KeyError(name)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Load and validate a scenario file.

        Raises
        ------
        ScenarioError
            Naming the field at fault (``"file"`` when it cannot be read or parsed).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError("file", f"cannot read {path}: {exc.strerror or exc}") from None
        return cls.loads(text, source=str(path), base_dir=path.parent)

    @classmethod
    def loads(cls, text: str, source: str = "<string>", base_dir: Path | None = None) -> Scenario:
        """Parse and validate scenario TOML text (relative paths resolve against ``base_dir``)."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError("file", f"{source} is not valid TOML: {exc}") from None
        return _parse(doc, source, base_dir or Path.cwd())


def load_default() -> Scenario:
    """The scenario that ships with the package (``sensors/data/default.toml``)."""
    ref = resources.files("sensors").joinpath("data/default.toml")
    return Scenario.loads(ref.read_text(encoding="utf-8"), source="default")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """``"default"`` for the embedded scenario, anything else is a path."""
    if str(name_or_path) == "default":
        return load_default()
    return Scenario.load(name_or_path)


# ---------------------------------------------------------------------------- parsing


def _keys(spec: type, *extra: str, drop: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The keys a table for ``spec`` may hold: its fields as written in the file."""
    return tuple(f.name for f in fields(spec) if f.name not in drop) + extra


# What each table may hold. A "missing" error names the keys outside these sets, so a
# misspelt required key is reported as what it is.
_TOP_KEYS = ("name", "seed", "duration", "truth_dt", "origin", "area", "zones", "targets",
             "sensors")
_ZONE_KEYS = ("name", "kind", "local", "lonlat", "geojson", "sides")
_RACETRACK_KEYS: tuple[str, ...] = ("center", "heading", "length", "width")
_SWATH_KEYS: tuple[str, ...] = (*_RACETRACK_KEYS, "shift")
_SENSOR_KEYS = {
    "radar": _keys(RadarSpec),
    "drone": _keys(DroneSpec, "waypoints", "racetrack", drop=("route",)),
    "satellite": _keys(SatelliteSpec, "swath", drop=_SWATH_KEYS),
    "ugs": _keys(UgsSpec, "line", "count"),
}
# Sensor points may also be given in lon/lat, as ``<key>_lonlat``.
_LONLAT_KEYS = ("position", "center", "waypoints", "line")
_SENSOR_KEYS = {
    kind: (*keys, *(f"{k}_lonlat" for k in _LONLAT_KEYS if k in keys))
    for kind, keys in _SENSOR_KEYS.items()
}
_RACETRACK_KEYS = (*_RACETRACK_KEYS, "center_lonlat")
_SWATH_KEYS = (*_SWATH_KEYS, "center_lonlat")
_ANY_SENSOR_KEYS = frozenset().union(*_SENSOR_KEYS.values())


class _Table(Table):
    """:class:`fusion.config.Table` with the scenario's own shapes: pairs and points.

    Keys that are never read are reported by :meth:`done`, so a typo such as
    ``rtae = 2`` is an error rather than a silent default.
    """

    def __init__(
        self,
        obj: Any,
        prefix: str,
        error: type[ConfigError] = ScenarioError,
        known: Iterable[str] | None = None,
        frame: LocalFrame | None = None,
    ):
        super().__init__(obj, prefix, error, known)
        # With a frame, point keys also accept ``<key>_lonlat`` (see :meth:`points`).
        self.frame = frame

    def has(self, key: str) -> bool:
        return key in self.obj or (self.frame is not None and f"{key}_lonlat" in self.obj)

    def table(self, key: str, known: Iterable[str] | None = None) -> _Table:
        return _Table(self.raw(key), self.name(key), self.error, known, self.frame)

    def pair(self, key: str, default: Any = REQUIRED, lo: float | None = None,
             strict_lo: bool = False, ordered: bool = True) -> tuple[float, float]:
        """Two numbers; a single number ``x`` means ``(x, x)``."""
        value = self.raw(key, default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = [value, value]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise self.fail(key, f"must be a number or [low, high], got {value!r}")
        a = _check_number(self.name(key), value[0], lo, None, strict_lo)
        b = _check_number(self.name(key), value[1], lo, None, strict_lo)
        if ordered and a > b:
            raise self.fail(key, f"low {a} is above high {b}")
        return a, b

    def points(self, key: str, default: Any = REQUIRED, min_count: int = 1) -> np.ndarray:
        """``[x, y]`` pairs in local metres; ``<key>_lonlat`` in degrees is converted."""
        alt = f"{key}_lonlat"
        if self.frame is None or alt not in self.obj:
            return self._points(key, default, min_count)
        if key in self.obj:
            raise self.fail(alt, f"give {key} or {alt}, not both")
        self.seen.add(key)
        lonlat = self._points(alt, REQUIRED, min_count)
        try:
            check_near_origin(lonlat, (self.frame.lon0, self.frame.lat0), "sensor point")
        except ImplausibleCoordinates as exc:
            raise self.fail(alt, str(exc)) from None
        return self.frame.to_local(lonlat)

    def _points(self, key: str, default: Any = REQUIRED, min_count: int = 1) -> np.ndarray:
        value = self.raw(key, default)
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise self.fail(key, "must be a list of [x, y] pairs") from None
        if arr.ndim == 1 and arr.shape == (2,) and min_count == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < min_count:
            raise self.fail(key, f"must be a list of at least {min_count} [x, y] pairs")
        if not np.isfinite(arr).all():
            raise self.fail(key, "holds a non-finite number")
        return arr

    def point(self, key: str, default: Any = REQUIRED) -> tuple[float, float]:
        arr = self.points(key, default)
        if arr.shape[0] != 1:
            raise self.fail(key, "must be one [x, y] pair")
        return float(arr[0, 0]), float(arr[0, 1])


def _check_number(field: str, value: Any, lo: float | None, hi: float | None,
                  strict_lo: bool) -> float:
    return check_number(field, value, ScenarioError, lo=lo, hi=hi, strict_lo=strict_lo)


def _parse(doc: dict[str, Any], source: str, base_dir: Path) -> Scenario:
    top = _Table(doc, "", known=_TOP_KEYS)
    name = top.string("name", "scenario")
    if not _NAME.match(name):
        raise ScenarioError(
            "name", f"{name!r} must match [A-Za-z0-9_-]{{1,64}} (it is a topic part)"
        )
    origin_arr = top.points("origin")
    if origin_arr.shape != (1, 2):
        raise ScenarioError("origin", "must be [lon, lat]")
    origin = (float(origin_arr[0, 0]), float(origin_arr[0, 1]))
    try:
        frame = LocalFrame(*origin)
    except ValueError as exc:
        raise ScenarioError("origin", str(exc)) from None
    area_arr = top.points("area", min_count=2)
    if area_arr.shape != (2, 2) or (area_arr[1] <= area_arr[0]).any():
        raise ScenarioError("area", "must be [[east_min, north_min], [east_max, north_max]]")
    area = (area_arr[0, 0], area_arr[0, 1], area_arr[1, 0], area_arr[1, 1])
    duration = top.number("duration", lo=0.0, strict_lo=True)
    seed = top.integer("seed", lo=0)
    truth_dt = top.number("truth_dt", 1.0, lo=0.0, strict_lo=True)

    zone_list = top.raw("zones")
    if not isinstance(zone_list, list) or not zone_list:
        raise ScenarioError("zones", "must be a non-empty list of [[zones]] tables")
    zone_specs = tuple(
        _parse_zone(_Table(z, f"zones[{i}]", known=_ZONE_KEYS), frame, base_dir)
        for i, z in enumerate(zone_list)
    )
    names = [z.name for z in zone_specs]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ScenarioError(f"zones[{i}].name", f"zone {n!r} is defined twice")

    target_list = top.raw("targets", [])
    if not isinstance(target_list, list):
        raise ScenarioError("targets", "must be a list of [[targets]] tables")
    targets = tuple(
        _parse_group(_Table(t, f"targets[{i}]", known=_keys(TargetGroup)), zone_specs)
        for i, t in enumerate(target_list)
    )
    group_names = [g.name for g in targets]
    for i, n in enumerate(group_names):
        if n in group_names[:i]:
            raise ScenarioError(f"targets[{i}].name", f"target group {n!r} is defined twice")

    sensor_list = top.raw("sensors", [])
    if not isinstance(sensor_list, list):
        raise ScenarioError("sensors", "must be a list of [[sensors]] tables")
    sensors: list[SensorSpec] = []
    for i, s in enumerate(sensor_list):
        sensors.extend(
            _parse_sensor(_Table(s, f"sensors[{i}]", known=_ANY_SENSOR_KEYS, frame=frame))
        )
    ids = [s.id for s in sensors]
    for i, n in enumerate(ids):
        if n in ids[:i]:
            raise ScenarioError("sensors", f"sensor id {n!r} is used twice")
    top.done()

    features = [
        {
            "type": "Feature",
            "properties": {"name": z.name, "kind": z.kind, "side_names": list(z.sides)},
            "geometry": {"type": "Polygon", "coordinates": [_ring_lonlat(frame, z.local)]},
        }
        for z in zone_specs
    ]
    return Scenario(
        name=name,
        origin=origin,
        area=area,
        duration=duration,
        seed=seed,
        truth_dt=truth_dt,
        zones={"type": "FeatureCollection", "features": features},
        zone_specs=zone_specs,
        targets=targets,
        sensors=tuple(sensors),
        source=source,
    )


def _ring_lonlat(frame: LocalFrame, local: np.ndarray) -> list[list[float]]:
    ring = frame.to_lonlat(np.vstack([local, local[:1]]))
    return [[round(float(lon), 9), round(float(lat), 9)] for lon, lat in ring]


def _parse_zone(t: _Table, frame: LocalFrame, base_dir: Path) -> ZoneSpec:
    name = t.string("name")
    if not _NAME.match(name):
        raise ScenarioError(t.name("name"), f"{name!r} must match [A-Za-z0-9_-]{{1,64}}")
    kind = t.string("kind", "buffer")
    given = [k for k in ("local", "lonlat", "geojson") if t.has(k)]
    if len(given) != 1:
        raise ScenarioError(t.name("local"), "give exactly one of local, lonlat or geojson")
    if given[0] == "local":
        local = t.points("local", min_count=3)
    else:
        if given[0] == "lonlat":
            ring = t.points("lonlat", min_count=3)
        else:
            ring = _read_geojson_ring(t, base_dir)
        try:
            check_near_origin(ring, (frame.lon0, frame.lat0), f"zone {name!r}")
        except ImplausibleCoordinates as exc:
            raise t.fail(given[0], str(exc)) from None
        local = frame.to_local(ring)
    if np.allclose(local[0], local[-1]):
        local = local[:-1]  # GeoJSON rings repeat the first vertex
    field = t.name(given[0])
    if local.shape[0] < 3:
        raise ScenarioError(field, "a polygon needs at least 3 distinct vertices")
    poly = shapely.Polygon(local)
    if not poly.is_valid or poly.area <= 0:
        raise ScenarioError(field, "is not a valid simple polygon (self-crossing or empty)")
    sides_default = _default_sides(local)
    sides_raw = t.raw("sides", list(sides_default))
    if (not isinstance(sides_raw, list) or len(sides_raw) != 2
            or not all(isinstance(s, str) and _NAME.match(s) for s in sides_raw)
            or sides_raw[0] == sides_raw[1]):
        raise ScenarioError(
            t.name("sides"), 'must be two different names, e.g. ["north", "south"]'
        )
    t.done()
    return ZoneSpec(name, kind, (sides_raw[0], sides_raw[1]), np.ascontiguousarray(local))


def _default_sides(local: np.ndarray) -> tuple[str, str]:
    """Compass names for the +w / -w sides of a zone (see ZoneFrame)."""
    n = ZoneFrame(shapely.Polygon(local)).normal
    if abs(n[1]) >= abs(n[0]):
        return ("north", "south") if n[1] > 0 else ("south", "north")
    return ("east", "west") if n[0] > 0 else ("west", "east")


def _read_geojson_ring(t: _Table, base_dir: Path) -> np.ndarray:
    rel = t.string("geojson")
    path = base_dir / rel
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(t.name("geojson"), f"cannot read GeoJSON from {path}: {exc}") from None
    if obj.get("type") == "FeatureCollection":
        feats = obj.get("features") or []
        if len(feats) != 1:
            raise ScenarioError(t.name("geojson"), "a FeatureCollection must hold exactly one zone")
        obj = feats[0]
    if obj.get("type") == "Feature":
        obj = obj.get("geometry") or {}
    if obj.get("type") != "Polygon":
        raise ScenarioError(t.name("geojson"), f"expected a Polygon, got {obj.get('type')!r}")
    try:
        ring = np.asarray(obj["coordinates"][0], dtype=float)[:, :2]
    except (KeyError, IndexError, TypeError, ValueError):
        raise ScenarioError(t.name("geojson"), "Polygon coordinates are malformed") from None
    return ring


def _parse_group(t: _Table, zones: tuple[ZoneSpec, ...]) -> TargetGroup:
    name = t.string("name")
    cls = t.string("cls", choices=TARGET_CLASSES)
    behaviour = t.string("behaviour", choices=BEHAVIOURS)
    zone_names = tuple(z.name for z in zones)
    zone = t.string("zone", zones[0].name, choices=zone_names)
    sides = next(z.sides for z in zones if z.name == zone)
    side = t.string("side", "both", choices=("both", *sides))
    along = t.pair("along", [0.05, 0.95], lo=0.0)
    if along[1] > 1.0:
        raise ScenarioError(t.name("along"), "is a fraction of the zone's length, within [0, 1]")
    lifetime = t.pair("lifetime", None, lo=0.0, strict_lo=True) if t.has("lifetime") else None
    t.seen.add("lifetime")
    group = TargetGroup(
        name=name,
        cls=cls,
        behaviour=behaviour,
        count=t.integer("count", 1, lo=1),
        zone=zone,
        side=side,
        speed=t.pair("speed", list(DEFAULT_SPEED[cls]), lo=0.0, strict_lo=True),
        offset=t.pair("offset", [300.0, 3000.0], lo=0.0),
        along=along,
        birth=t.pair("birth", 0.0),
        lifetime=lifetime,
        leg=t.pair("leg", list(DEFAULT_LEG[cls]), lo=0.0, strict_lo=True),
        loiter=t.pair("loiter", [120.0, 300.0], lo=0.0),
        stop=t.pair("stop", [80.0, 300.0], lo=0.0, strict_lo=True),
        convoy=t.integer("convoy", 1, lo=1),
        spacing=t.number("spacing", 60.0, lo=0.0, strict_lo=True),
    )
    t.done()
    return group


def _parse_pd(t: _Table) -> tuple[float, float, float, float]:
    value = t.raw("pd")
    if isinstance(value, dict):
        sub = _Table(value, t.name("pd"), known=TARGET_CLASSES)
        per = [sub.number(c, 0.0, lo=0.0, hi=1.0) for c in TARGET_CLASSES]
        sub.done()
        return (0.0, per[0], per[1], per[2])
    p = _check_number(t.name("pd"), value, 0.0, 1.0, False)
    return (0.0, p, p, p)


def _parse_sensor(t: _Table) -> list[SensorSpec]:
    kind = t.string("kind", choices=SENSOR_KINDS)
    t.expect(_SENSOR_KEYS[kind])
    sid = t.string("id")
    if not _SENSOR_ID.match(sid):
        raise ScenarioError(t.name("id"), f"{sid!r} must match [A-Za-z0-9_.:-]{{1,64}}")
    common: dict[str, Any] = {
        "id": sid,
        "kind": kind,
        "pd": _parse_pd(t),
        "clutter": t.number("clutter", 0.0, lo=0.0),
        "latency": t.pair("latency", 0.0, lo=0.0),
    }
    specs: list[SensorSpec]
    if kind == "radar":
        r = t.pair("range", lo=0.0)
        if r[1] <= r[0]:
            raise ScenarioError(t.name("range"), "maximum range must exceed the minimum")
        specs = [RadarSpec(
            **common,
            position=t.point("position"),
            rate=t.number("rate", lo=0.0, strict_lo=True),
            range=r,
            azimuth=t.number("azimuth", 0.0),
            width=t.number("width", 360.0, lo=0.0, hi=360.0, strict_lo=True),
            sigma_range=t.number("sigma_range", lo=0.0, strict_lo=True),
            sigma_bearing=t.number("sigma_bearing", lo=0.0, strict_lo=True),
        )]
    elif kind == "drone":
        specs = [DroneSpec(
            **common,
            route=_parse_route(t),
            speed=t.number("speed", lo=0.0, strict_lo=True),
            phase=t.number("phase", 0.0, lo=0.0),
            rate=t.number("rate", lo=0.0, strict_lo=True),
            footprint=t.pair("footprint", lo=0.0, strict_lo=True, ordered=False),
            sigma=t.number("sigma", lo=0.0, strict_lo=True),
            class_accuracy=t.number("class_accuracy", 0.9, lo=0.0, hi=1.0),
        )]
    elif kind == "satellite":
        sw = t.table("swath", known=_SWATH_KEYS)
        swath: dict[str, Any] = {
            "center": sw.point("center"),
            "heading": sw.number("heading", 90.0),
            "length": sw.number("length", lo=0.0, strict_lo=True),
            "width": sw.number("width", lo=0.0, strict_lo=True),
            "shift": sw.number("shift", 0.0, lo=0.0),
        }
        sw.done()
        acc = t.number("class_accuracy", lo=0.0, hi=1.0) if t.has("class_accuracy") else None
        t.seen.add("class_accuracy")
        specs = [SatelliteSpec(
            **common,
            revisit=t.number("revisit", lo=0.0, strict_lo=True),
            first_pass=t.number("first_pass", 0.0, lo=0.0),
            sigma=t.number("sigma", lo=0.0, strict_lo=True),
            class_accuracy=acc,
            **swath,
        )]
    else:  # ugs
        radius = t.number("radius", lo=0.0, strict_lo=True)
        rate = t.number("rate", lo=0.0, strict_lo=True)
        if t.has("line"):
            # A line of sensors: ``count`` of them evenly from the first point to the last.
            line = t.points("line", min_count=2)
            count = t.integer("count", lo=1)
            s = np.linspace(0.0, 1.0, count) if count > 1 else np.array([0.5])
            seg = np.diff(line, axis=0)
            cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
            along = s * cum[-1]
            pos = np.stack(
                [np.interp(along, cum, line[:, 0]), np.interp(along, cum, line[:, 1])], axis=1
            )
            width = len(str(count - 1))
            specs = [
                UgsSpec(
                    **{**common, "id": f"{sid}-{k:0{width}d}"},
                    position=(float(p[0]), float(p[1])), radius=radius, rate=rate,
                )
                for k, p in enumerate(pos)
            ]
            for s_ in specs:
                if not _SENSOR_ID.match(s_.id):
                    raise ScenarioError(t.name("id"), f"expanded id {s_.id!r} is too long")
        else:
            specs = [UgsSpec(**common, position=t.point("position"), radius=radius, rate=rate)]
    t.done()
    return specs


def _parse_route(t: _Table) -> np.ndarray:
    if t.has("waypoints") == t.has("racetrack"):
        raise ScenarioError(
            t.name("racetrack"), "a drone needs exactly one of racetrack or waypoints"
        )
    if t.has("waypoints"):
        return t.points("waypoints", min_count=2)
    rt = t.table("racetrack", known=_RACETRACK_KEYS)
    route = racetrack(
        np.asarray(rt.point("center")),
        rt.number("heading", 90.0),
        rt.number("length", lo=0.0, strict_lo=True),
        rt.number("width", lo=0.0, strict_lo=True),
    )
    rt.done()
    return route


# Class index of each target class on the wire.
CLASS_INDEX = {c: CLASSES.index(c) for c in TARGET_CLASSES}
