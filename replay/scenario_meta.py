"""Scenario metadata in a recording header, and what replay and eval rebuild from it.

A recording written by ``bufferzone simulate`` (or ``bufferzone record --scenario``)
carries the scenario in its header, so that a replay needs no other file to know the
zones and the local frame, and an evaluation knows the truth's incursion events::

    {"kind": "recording",                 # or "result" for an offline replay's output
     "writer": "bufferzone simulate",
     "scenario": {"name": str, "source": str, "seed": int, "duration": float,
                  "truth_dt": float, "origin": [lon, lat],
                  "zones": GeoJSON FeatureCollection (lon/lat),
                  "incursions": [{"target", "zone", "t_enter", "t_exit", "side", "cls"}]}}

``incursions`` is absent when the writer did not simulate the truth (a live
``record`` does not: simulating the default scenario takes tens of seconds, longer
than a sensor publisher waits for its subscriber); :func:`incursions_for` then
simulates it from ``source`` when asked.
"""

from __future__ import annotations

import copy
from typing import Any

from fusion.alerting.zones import ZoneSet
from fusion.geo import LocalFrame
from sensors.scenario import Scenario, load_scenario
from sensors.truth import Truth, simulate_truth


def scenario_metadata(scenario: Scenario, truth: Truth | None = None) -> dict[str, Any]:
    """The ``scenario`` entry of a header: name, source, frame, zones, incursions.

    Parameters
    ----------
    scenario : Scenario
    truth : Truth, optional
        When given, its incursion list is included.
    """
    meta: dict[str, Any] = {
        "name": scenario.name,
        "source": scenario.source,
        "seed": int(scenario.seed),
        "duration": float(scenario.duration),
        "truth_dt": float(scenario.truth_dt),
        "origin": [float(v) for v in scenario.origin],
        "zones": scenario.zones_geojson(),
    }
    if truth is not None:
        meta["incursions"] = [dict(e) for e in truth.incursions]
    return meta


def zones_from_metadata(scenario_meta: dict[str, Any]) -> tuple[ZoneSet, LocalFrame]:
    """Zones and local frame from a header's ``scenario`` entry.

    Raises
    ------
    KeyError
        When the entry has no ``zones`` or ``origin``.
    """
    frame = LocalFrame(*(float(v) for v in scenario_meta["origin"]))
    return ZoneSet.from_geojson(copy.deepcopy(scenario_meta["zones"]), frame), frame


def incursions_for(
    scenario_meta: dict[str, Any], simulate: bool = True
) -> list[dict[str, Any]] | None:
    """The truth incursion events of a header's scenario, simulating them if needed.

    Parameters
    ----------
    scenario_meta : dict
        A header's ``scenario`` entry.
    simulate : bool
        When the entry lacks ``incursions``, load the scenario from ``source`` and
        simulate its truth (deterministic: the scenario fixes the seed).

    Returns
    -------
    list of dict or None
        None when the entry has none and they cannot be simulated.
    """
    if "incursions" in scenario_meta:
        return list(scenario_meta["incursions"])
    source = scenario_meta.get("source")
    if not simulate or not source or source.startswith("<"):
        return None
    try:
        scenario = load_scenario(source)
    except (OSError, ValueError):
        return None
    return simulate_truth(scenario).incursions
