"""Predicted incursions open on the probability of a breach within the horizon.

The zone is an east-west strip (north -100..100); tracks come from the north. Each
case is one the straight-line rule got wrong or the probability must get right.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import RulesError, RuleSet, load_rules
from fusion.alerting.zones import Zone
from fusion.messages import CLASSES

EDGE = 100.0  # north of the strip's northern edge
DT = 0.5


def strip() -> Zone:
    corners = [[-4e3, -EDGE], [4e3, -EDGE], [4e3, EDGE], [-4e3, EDGE]]
    return Zone.from_local("zone-a", np.array(corners))


def step_all(path, pos_std=5.0, vel_std=0.5, mu=None, rules=None):
    """Drive one track (id 1) along ``path``: a list of (north, v_north); events out."""
    engine = AlertEngine([strip()], rules or load_rules())
    events = []
    P = np.diag([pos_std**2, pos_std**2, vel_std**2, vel_std**2])[None]
    for k, (north, v_north) in enumerate(path):
        kw = {} if mu is None else {"mu": np.array(mu, float)[:, None]}
        events += engine.step(
            k * DT, np.array([1]), np.array([[0.0, north, 0.0, v_north]]), P,
            np.array([CLASSES.index("vehicle")], np.uint8), np.array([0.9]),
            updated_ids=np.array([1]), sensor_id="radar-1", **kw,
        )  # fmt: skip
    return [e for e in events if e["kind"] == "predicted_incursion"]


def straight(north0, v, seconds):
    return [(north0 + v * k * DT, v) for k in range(int(seconds / DT))]


def test_steady_track_heading_in_opens_with_its_evidence():
    # 8 m/s from 700 m out of the edge: enters after 87.5 s.
    events = step_all(straight(EDGE + 700.0, -8.0, 80.0))
    opened = [e for e in events if e["event"] == "open"]
    assert len(opened) == 1
    ev = opened[0]
    # Opens inside the 45 s horizon, after the dwell, well before the entry.
    assert 87.5 - 45.0 <= ev["t"] <= 87.5 - 20.0
    assert ev["p_breach"] >= 0.6 and ev["horizon"] == 45.0
    assert ev["time_to_breach"] == pytest.approx(87.5 - ev["t"])
    assert ev["evidence"] == ["radar-1"] and ev["severity"] == "medium"


def test_the_same_track_turning_away_before_the_horizon_does_not_open():
    # Heads in as above, but stops 420 m out (entry still 52 s off) and turns back.
    path = straight(EDGE + 700.0, -8.0, 35.0)
    path += straight(path[-1][0], 8.0, 60.0)
    assert step_all(path) == []


def test_a_track_that_turns_back_after_opening_closes_as_cleared():
    path = straight(EDGE + 700.0, -8.0, 70.0)  # opens (see above), 140 m out at the end
    path += straight(path[-1][0], 6.0, 30.0)
    events = step_all(path)
    assert [e["event"] for e in events if e["event"] != "update"] == ["open", "close"]
    assert events[-1]["reason"] == "cleared" and events[-1]["p_breach"] <= 0.3


def test_uncertain_track_whose_straight_line_enters_does_not_open():
    # 150 m out at 5 m/s: the straight line enters in 30 s, inside the horizon, but a
    # velocity known only to 10 m/s makes a breach a coin toss, not a likelihood.
    still_far = straight(EDGE + 150.0, -5.0, 10.0)
    frozen = [(EDGE + 150.0, -5.0)] * len(still_far)  # the estimate does not move
    assert step_all(frozen, pos_std=60.0, vel_std=10.0) == []
    # The same estimate, well known, opens.
    assert [e["event"] for e in step_all(frozen)] == ["open"]


def test_far_track_with_large_covariance_does_not_open():
    frozen = [(EDGE + 1500.0, -20.0)] * 20  # straight line: enters in 75 s
    assert step_all(frozen, pos_std=400.0, vel_std=8.0) == []


def test_manoeuvring_mode_probability_lowers_the_breach_probability():
    # Entry 40 s off: likely while the track flies straight, not while it manoeuvres.
    frozen = [(EDGE + 400.0, -10.0)] * 10
    quiet = step_all(frozen, mu=[0.97, 0.03])
    assert [e["event"] for e in quiet] == ["open"]
    wild = step_all(frozen, mu=[0.1, 0.9])
    assert wild == []


def test_breach_settings_are_checked():
    with pytest.raises(RulesError) as err:
        RuleSet.from_dict({"zones": {"*": {"predicted_incursion": {"p_close": 0.7}}}})
    assert err.value.field == 'zones."*".predicted_incursion.p_close'
    with pytest.raises(RulesError) as err:
        RuleSet.from_dict({"zones": {"*": {"predicted_incursion": {"manoeuvre_prob": 1.5}}}})
    assert err.value.field == 'zones."*".predicted_incursion.manoeuvre_prob'
