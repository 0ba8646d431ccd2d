"""A probe alert follows a predicted incursion that cleared near the line.

The zone is an east-west strip (north -100..100); one vehicle track comes from the
north at 8 m/s, as in ``test_kinds_predicted``: from 700 m out its warning opens after
about 40 s, and it turns back 140 m from the edge unless a case says otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import RulesError, RuleSet, load_rules
from fusion.alerting.views import STATE_COLUMNS, ZoneState
from fusion.messages import CLASSES
from tests.fusion.test_kinds_predicted import DT, EDGE, straight, strip

P = np.diag([25.0, 25.0, 0.25, 0.25])[None]


def rules_with(**probe) -> RuleSet:
    return RuleSet.from_dict({"zones": {"*": {"probe": probe}}}) if probe else load_rules()


def drive(path, rules=None, cls="vehicle", engine=None, t0=0.0, deleted_at=None):
    """Drive track 1 along ``path`` ((north, v_north) per step); returns (events, engine)."""
    engine = engine or AlertEngine([strip()], rules or load_rules())
    events = []
    for k, (north, v_north) in enumerate(path):
        t = t0 + k * DT
        if deleted_at is not None and t >= deleted_at:
            events += engine.step(t, np.zeros(0, np.int64), np.zeros((0, 4)), P[:0],
                                  np.zeros(0, np.uint8), np.zeros(0), deleted_ids=np.array([1]))
            break
        events += engine.step(
            t, np.array([1]), np.array([[0.0, north, 0.0, v_north]]), P,
            np.array([CLASSES.index(cls)], np.uint8), np.array([0.9]),
            updated_ids=np.array([1]), sensor_id="radar-1",
        )  # fmt: skip
    return events, engine


def turn_back(closest=140.0):
    """In at 8 m/s from 700 m out to ``closest`` metres from the edge, then out at 6 m/s."""
    path = straight(EDGE + 700.0, -8.0, (700.0 - closest) / 8.0)
    return path + straight(path[-1][0], 6.0, 30.0)


def of_kind(events, kind):
    return [e for e in events if e["kind"] == kind and e["event"] != "update"]


def test_a_track_that_turns_back_near_the_line_raises_a_probe():
    events, _ = drive(turn_back())
    pred = of_kind(events, "predicted_incursion")
    assert [e["event"] for e in pred] == ["open", "close"] and pred[1]["reason"] == "cleared"
    probe = of_kind(events, "probe")
    assert [e["event"] for e in probe] == ["open", "close"]  # hold 0: both at once
    opened = probe[0]
    assert opened["t"] == pred[1]["t"] == probe[1]["t"]
    assert opened["related_alert_id"] == pred[0]["alert_id"]
    assert opened["alert_id"] == "zone-a:probe:1:0" and opened["severity"] == "low"
    assert opened["side"] == "north" and opened["evidence"] == ["radar-1"]
    # The closest the estimate came: the turning point's distance, within one step.
    assert opened["closest_approach"] == pytest.approx(140.0, abs=8.0 * DT + 1e-6)
    assert probe[1]["reason"] == "hold_elapsed"
    # Only the probe carries a closest approach.
    assert all(e["closest_approach"] is None for e in pred)


def test_a_track_that_goes_in_raises_no_probe():
    events, _ = drive(straight(EDGE + 700.0, -8.0, 100.0))
    closes = [e for e in of_kind(events, "predicted_incursion") if e["event"] == "close"]
    assert closes and closes[0]["reason"] == "incursion"
    assert of_kind(events, "probe") == []


@pytest.mark.parametrize(
    "rules, cls",
    [
        ({"max_distance": 100.0}, "vehicle"),  # it turned 140 m out
        ({"enabled": False}, "vehicle"),
        ({"classes": ["person"]}, "vehicle"),
    ],
)
def test_the_rule_decides_which_cleared_warnings_are_probes(rules, cls):
    events, _ = drive(turn_back(), rules_with(**rules), cls)
    assert [e["reason"] for e in of_kind(events, "predicted_incursion")][-1] == "cleared"
    assert of_kind(events, "probe") == []


def test_a_hold_keeps_the_probe_on_the_board():
    events, _ = drive(turn_back(), rules_with(hold=10.0))
    probe = of_kind(events, "probe")
    assert [e["event"] for e in probe] == ["open", "close"]
    assert probe[1]["t"] - probe[0]["t"] == pytest.approx(10.0)


def test_a_track_deleted_during_its_warning_raises_no_probe():
    path = straight(EDGE + 700.0, -8.0, 70.0)
    events, _ = drive(path, deleted_at=60.0)
    pred = of_kind(events, "predicted_incursion")
    assert pred[-1]["event"] == "close" and pred[-1]["reason"] == "track_deleted"
    assert of_kind(events, "probe") == []


def test_the_closest_approach_survives_a_checkpoint():
    path = turn_back(closest=120.0)
    turn = next(k for k, (_, v) in enumerate(path) if v > 0)
    whole, _ = drive(path)
    # Checkpoint a few steps after the turn, while the warning is still open.
    first, engine = drive(path[: turn + 4])
    resumed = AlertEngine([strip()], load_rules())
    resumed.load_state_dict(engine.state_dict())
    rest, _ = drive(path[turn + 4:], engine=resumed, t0=(turn + 4) * DT)
    assert of_kind(first + rest, "probe") == of_kind(whole, "probe")
    assert of_kind(whole, "probe")[0]["closest_approach"] == pytest.approx(120.0, abs=4.0)


def test_an_older_checkpoint_without_the_column_loads():
    state = ZoneState(np.array([3, 7]), np.full((len(STATE_COLUMNS), 2), np.nan))
    columns = state.as_columns()
    del columns["pred_near"]
    loaded = ZoneState.from_columns(columns)
    assert loaded.table.shape == (len(STATE_COLUMNS), 2)
    assert np.isnan(loaded.table[STATE_COLUMNS.index("pred_near")]).all()


def test_a_negative_max_distance_is_refused_by_name():
    with pytest.raises(RulesError) as err:
        rules_with(max_distance=-1.0)
    assert err.value.field == 'zones."*".probe.max_distance'
