"""What was in force: zones, origin, rules and settings, as plain data.

The service writes this map into the alert log (a chained CONFIG record, so it is
signed with the events it explains) and into the header of every raw-input
recording; an evidence bundle copies it, so a replay on another machine uses the
same zones and rules. Everything is msgpack-able and loads back with
:func:`rules_from_context` and :func:`zones_from_context`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import KINDS, RuleSet, ZoneRules
from fusion.alerting.zones import ZoneSet
from fusion.geo import LocalFrame

__all__ = ["rules_from_context", "rules_to_dict", "service_context", "zones_from_context"]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _zone_rules(z: ZoneRules) -> dict[str, Any]:
    return {kind: {f.name: _plain(getattr(z[kind], f.name))
                   for f in dataclasses.fields(z[kind])} for kind in KINDS}


def rules_to_dict(rules: RuleSet) -> dict[str, Any]:
    """A rules table that :meth:`RuleSet.from_dict` reads back to an equal rule set."""
    zones = {"*": _zone_rules(rules.default)}
    zones.update({name: _zone_rules(z) for name, z in rules.zones.items()})
    return {"version": 1, "zones": zones}


def service_context(engine: AlertEngine, tracker_config: Any = None,
                    service_config: Any = None) -> dict[str, Any]:
    """Zones (GeoJSON lon/lat), origin, rules and the tracker and timing settings.

    The ``scenario`` entry has the shape a recording header's has
    (``replay.scenario_meta``), so a raw-input recording replays on its own.
    """
    frame: LocalFrame | None = engine.frame
    ctx: dict[str, Any] = {"rules": rules_to_dict(engine.rules)}
    if frame is not None:
        ctx["scenario"] = {"name": "service", "source": "<service>",
                           "origin": [float(frame.lon0), float(frame.lat0)],
                           "zones": engine.zones.to_geojson(frame)}
    if dataclasses.is_dataclass(tracker_config) and not isinstance(tracker_config, type):
        ctx["tracker_config"] = _plain(dataclasses.asdict(tracker_config))
    if service_config is not None:
        ctx["service"] = {name: getattr(service_config, name)
                          for name in ("reorder_window", "alert_interval", "max_lateness",
                                       "max_future", "time_reference")}
    return ctx


def rules_from_context(ctx: Mapping[str, Any]) -> RuleSet:
    """The rule set of a :func:`service_context` map."""
    return RuleSet.from_dict(ctx["rules"])


def zones_from_context(ctx: Mapping[str, Any]) -> tuple[ZoneSet, LocalFrame]:
    """Zones and local frame of a :func:`service_context` map."""
    import copy

    scenario = ctx["scenario"]
    frame = LocalFrame(*(float(v) for v in scenario["origin"]))
    return ZoneSet.from_geojson(copy.deepcopy(scenario["zones"]), frame), frame
