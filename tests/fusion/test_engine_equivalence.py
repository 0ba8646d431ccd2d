"""The alert engine raises exactly the alerts it raised before its rebuild.

The embedded default scenario is replayed in-process through the same
:class:`fusion.service.pipeline.Pipeline` that ``bufferzone replay --offline`` uses
(messages in delivery order, the pipeline's clock on the arrival time, a rule timer
every second). Every alert event's id, kind, zone, event, time, severity, close
reason, sides and evidence, and (to 1e-6) its position, P(inside) and time to breach,
is compared with a golden list. Two cases: the shipped rules, and "sensitive" rules
(short loiter time, wide band, holds on exit and lost_inside) that make loitering
alerts common. The golden file was written by the engine as it was before the
rebuild (see the commit that added it); regenerate it only on purpose::

    .venv/bin/python -m tests.fusion.test_engine_equivalence --write
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import RuleSet, load_rules
from fusion.alerting.zones import ZoneSet
from fusion.service import Pipeline, ServiceConfig
from fusion.tracking.tracker import Tracker
from sensors.feed import iter_messages
from sensors.scenario import load_default

GOLDEN = Path(__file__).parent / "data" / "default_scenario_alerts.json"
# Rules that make every condition kind fire often in the default scenario.
SENSITIVE = {
    "zones": {
        "*": {
            "incursion": {
                "p_open": 0.5,
                "dwell_open": 1.0,
                "dwell_close": 1.0,
                "update_interval": 5.0,
            },
            "predicted_incursion": {
                "horizon": 120.0,
                "horizon_close": 150.0,
                "update_interval": 0.0,
            },
            "loitering": {
                "radius": 150.0,
                "time": 30.0,
                "band": 3000.0,
                "radius_close": 200.0,
                "dwell_close": 2.0,
                "update_interval": 60.0,
            },
            "exit": {"hold": 5.0},
            "lost_inside": {"hold": 20.0},
        }
    }
}
# (name, rules, seconds of the scenario): the first minutes only, long enough for
# incursions to open and close (the first exit is at 389 s), short enough to be quick.
CASES = (("default", None, 420.0), ("sensitive", SENSITIVE, 240.0))
# Event fields compared exactly, and numbers compared to a tolerance.
KEYS = (
    "alert_id",
    "kind",
    "zone",
    "event",
    "t",
    "severity",
    "reason",
    "related_alert_id",
    "side",
    "side_now",
    "evidence",
    "cls",
    "opened_at",
    "closed_at",
)
NUMBERS = ("east", "north", "p_inside", "time_to_breach")


def replay_default(duration: float, rules: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Alert events of the default scenario's first ``duration`` seconds, in order."""
    rule_set = load_rules() if rules is None else RuleSet.from_dict(rules)
    scenario = dataclasses.replace(load_default(), duration=duration)
    zones = ZoneSet.from_geojson(scenario.zones_geojson(), scenario.frame)
    events: list[dict[str, Any]] = []
    now = [0.0]

    def emit(topic: bytes, payload: bytes) -> None:
        if topic.startswith(b"alert."):
            ev = msgpack.unpackb(payload, raw=False)
            events.append(
                {k: ev[k] for k in KEYS}
                | {"east": ev["position"]["east"], "north": ev["position"]["north"]}
                | {"p_inside": ev["p_inside"], "time_to_breach": ev["time_to_breach"]}
            )

    pipe = Pipeline(
        Tracker(),
        AlertEngine(zones, rule_set, scenario.frame),
        ServiceConfig(),
        emit=emit,
        clock=lambda: now[0],
    )
    next_timer = -math.inf
    for t_recv, topic, payload in iter_messages(scenario):
        now[0] = t_recv
        pipe.receive([topic, payload], t_recv)
        pipe.release()
        if t_recv >= next_timer:
            pipe.timer(t_recv)
            next_timer = t_recv + 1.0
    pipe.release(flush=True)
    pipe.timer(now[0])
    return events


def _dump(golden: dict[str, Any]) -> str:
    """JSON with one event per line, as a list in ``KEYS + NUMBERS`` order (diffable)."""
    lines = ["{"]
    for c, (name, case) in enumerate(golden.items()):
        head = {"duration": case["duration"], "rules": case["rules"], "columns": [*KEYS, *NUMBERS]}
        lines.append(f'{json.dumps(name)}: {json.dumps(head)[:-1]}, "events": [')
        rows = [json.dumps([e[k] for k in (*KEYS, *NUMBERS)]) for e in case["events"]]
        lines.append(",\n".join(rows))
        lines.append("]}" + ("," if c < len(golden) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _load() -> dict[str, Any]:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for case in golden.values():
        case["events"] = [dict(zip(case["columns"], row, strict=True)) for row in case["events"]]
    return golden


def _same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    if any(got[k] != want[k] for k in KEYS):
        return False
    for k in NUMBERS:
        a, b = got[k], want[k]
        if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-6):
            return False
    return True


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_default_scenario_alerts_match_the_golden_list(case):
    golden = _load()[case]
    events = replay_default(golden["duration"], golden["rules"])
    mismatch = [
        (i, got, want)
        for i, (got, want) in enumerate(zip(events, golden["events"], strict=False))
        if not _same(got, want)
    ]
    assert not mismatch, f"first differing event #{mismatch[0][0]}: {mismatch[0][1:]}"
    assert len(events) == len(golden["events"])


def test_golden_lists_cover_the_condition_kinds():
    golden = _load()
    kinds = {(e["kind"], e["event"]) for case in golden.values() for e in case["events"]}
    for kind in ("incursion", "predicted_incursion", "loitering", "exit"):
        assert {(kind, "open"), (kind, "close")} <= kinds


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    out = {
        name: {"duration": duration, "rules": rules, "events": replay_default(duration, rules)}
        for name, rules, duration in CASES
    }
    GOLDEN.write_text(_dump(out), encoding="utf-8")
    print(f"wrote {sum(len(c['events']) for c in out.values())} events to {GOLDEN}")
