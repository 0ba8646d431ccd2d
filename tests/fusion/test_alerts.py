"""Alert engine and rules: lifecycles on hand-made track histories, and rule loading."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import KINDS, RulesError, RuleSet, load_rules
from fusion.alerting.zones import Zone
from fusion.geo import LocalFrame
from fusion.messages import CLASSES, pack_map

FRAME = LocalFrame(33.0, 35.0)
SIGMA = 5.0  # position standard deviation of every track, metres

EVENT_KEYS = {
    "alert_id",
    "kind",
    "event",
    "severity",
    "zone",
    "track_id",
    "t",
    "position",
    "velocity",
    "speed",
    "p_inside",
    "time_to_breach",
    "side",
    "cls",
    "conf",
    "evidence",
    "opened_at",
}


def strip_zone(name: str = "zone-a") -> Zone:
    """An east-west strip 4 km long, 200 m wide (north -100..100)."""
    return Zone.from_local(name, np.array([[-2000, -100], [2000, -100], [2000, 100], [-2000, 100]]))


def snapshot(positions, velocities, cls="person", sigma=SIGMA, ids=None):
    pos = np.atleast_2d(np.asarray(positions, float))
    vel = np.atleast_2d(np.asarray(velocities, float))
    n = pos.shape[0]
    x = np.hstack([pos, vel])
    P = np.tile(np.diag([sigma**2, sigma**2, 1.0, 1.0]), (n, 1, 1))
    ids = np.arange(1, n + 1, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    return dict(
        ids=ids, x=x, P=P, cls=np.full(n, CLASSES.index(cls), np.uint8), conf=np.full(n, 0.9)
    )


def run(engine, states, dt=0.5, t0=0.0, sensors=("uav-1", "radar-2")):
    """Step the engine through a list of snapshots, alternating sensors as evidence."""
    events = []
    for k, snap in enumerate(states):
        events += engine.step(
            t0 + k * dt, **snap, updated_ids=snap["ids"], sensor_id=sensors[k % len(sensors)]
        )
    return events


def crossing(n_steps=400, dt=0.5, north0=600.0, v=-5.0, east=0.0):
    return [snapshot([east, north0 + v * k * dt], [0.0, v]) for k in range(n_steps)]


def opens(events, kind=None):
    return [e for e in events if e["event"] == "open" and (kind is None or e["kind"] == kind)]


def test_crossing_track_predicted_then_incursion_then_exit():
    engine = AlertEngine([strip_zone()], load_rules(), FRAME)
    events = run(engine, crossing())
    seq = [(e["kind"], e["event"]) for e in events if e["event"] != "update"]
    assert seq == [
        ("predicted_incursion", "open"),
        ("incursion", "open"),
        ("predicted_incursion", "close"),
        ("incursion", "close"),
        ("exit", "open"),
        ("exit", "close"),
    ]
    pred_open = opens(events, "predicted_incursion")[0]
    # Path reaches the edge (north = 100) 100 s after t=0. P(breach within the 45 s
    # horizon) reaches p_open once the entry is a little inside the horizon (the
    # velocity and acceleration noise spread the prediction), plus the 2 s dwell.
    assert 100.0 - 45.0 + 2.0 <= pred_open["t"] <= 100.0 - 30.0
    assert pred_open["time_to_breach"] == pytest.approx(100.0 - pred_open["t"])
    assert pred_open["p_breach"] >= 0.6 and pred_open["horizon"] == 45.0
    inc = opens(events, "incursion")[0]
    # P(inside) >= 0.6 once 1.27 sigma inside (t ~ 101.5), plus 2 s dwell.
    assert 101.0 <= inc["t"] <= 104.5
    assert inc["side"] == "north"
    assert inc["alert_id"] == "zone-a:incursion:1:0"
    assert inc["severity"] == "medium" and inc["cls"] == "person"
    assert inc["evidence"] == ["radar-2", "uav-1"]
    assert inc["p_inside"] >= 0.6 and inc["time_to_breach"] == 0.0
    exit_ = opens(events, "exit")[0]
    assert exit_["side"] == "north" and exit_["side_now"] == "south"
    assert exit_["related_alert_id"] == inc["alert_id"]
    assert exit_["position"]["north"] < -100
    close = [e for e in events if e["kind"] == "incursion" and e["event"] == "close"][0]
    assert close["reason"] == "left_zone" and close["opened_at"] == inc["t"]
    pred_close = [
        e for e in events if e["kind"] == "predicted_incursion" and e["event"] == "close"
    ][0]
    assert pred_close["reason"] == "incursion" and pred_close["t"] == inc["t"]
    # Updates every 10 s while the incursion is open (about 40 s).
    assert 3 <= sum(e["kind"] == "incursion" and e["event"] == "update" for e in events) <= 5
    assert engine.open_alerts() == []
    for e in events:
        assert EVENT_KEYS <= set(e)
        assert set(e["position"]) == {"east", "north", "lon", "lat"}
        assert set(e["velocity"]) == {"east", "north"}
        # Plain Python values: the event goes on the wire and into the log as is.
        assert msgpack.unpackb(pack_map(e), raw=False)["alert_id"] == e["alert_id"]
    lonlat = FRAME.to_lonlat(np.array([inc["position"]["east"], inc["position"]["north"]]))
    assert (inc["position"]["lon"], inc["position"]["lat"]) == pytest.approx(tuple(lonlat))


def test_side_is_south_for_a_northbound_crossing():
    engine = AlertEngine([strip_zone()], load_rules(), FRAME)
    events = run(engine, crossing(north0=-600.0, v=5.0))
    assert {e["side"] for e in opens(events)} == {"south"}


def test_many_far_tracks_do_not_change_the_crossing_alerts():
    rng = np.random.default_rng(7)
    far = rng.uniform(-20_000, 20_000, (500, 2))
    far[:, 1] = np.where(np.abs(far[:, 1]) < 3000, far[:, 1] + 6000, far[:, 1])
    far_v = rng.normal(0, 3, (500, 2))
    alone = run(AlertEngine([strip_zone()], load_rules(), FRAME), crossing())
    states = []
    for k, s in enumerate(crossing()):
        other = snapshot(far + far_v * k * 0.5, far_v, ids=np.arange(1000, 1500))
        states.append({key: np.concatenate([other[key], s[key]]) for key in s})
    mixed = run(AlertEngine([strip_zone()], load_rules(), FRAME), states)
    assert mixed == alone


def test_edge_sliding_track_does_not_flap():
    rng = np.random.default_rng(11)
    n = 600
    east = -1500 + 4.0 * 0.5 * np.arange(n)
    north = 100.0 + rng.normal(0.0, 3.0, n)  # right on the northern edge
    states = [snapshot([east[k], north[k]], [4.0, 0.0]) for k in range(n)]
    events = run(AlertEngine([strip_zone()], load_rules(), FRAME), states)
    inc = [e for e in events if e["kind"] == "incursion" and e["event"] != "update"]
    assert len(inc) <= 2
    # Without hysteresis or dwell the same track flaps many times.
    naive = RuleSet.from_toml(
        '[zones."*".incursion]\np_open = 0.5\np_close = 0.499\ndwell_open = 0\ndwell_close = 0\n'
    )
    flaps = run(AlertEngine([strip_zone()], naive, FRAME), states)
    assert len(opens(flaps, "incursion")) > 30


def test_patrol_parallel_outside_raises_nothing():
    rng = np.random.default_rng(3)
    n = 600
    east = -1800 + 3.0 * 0.5 * np.arange(n)
    states = [
        snapshot(
            [east[k], 250.0 + rng.normal(0, 2)],
            [3.0 + rng.normal(0, 0.2), rng.normal(0, 0.2)],
            cls="vehicle",
        )
        for k in range(n)
    ]
    assert run(AlertEngine([strip_zone()], load_rules(), FRAME), states) == []


def test_loitering_near_the_zone():
    rng = np.random.default_rng(5)
    n = 400  # 200 s still, 150 m north of the zone, then walks off north
    pos = np.array([0.0, 250.0]) + rng.normal(0, 4, (n, 2))
    pos[300:, 1] += 2.0 * 0.5 * np.arange(100) * 3
    vel = np.zeros((n, 2))
    vel[300:, 1] = 6.0
    states = [snapshot(pos[k], vel[k], cls="drone") for k in range(n)]
    events = run(AlertEngine([strip_zone()], load_rules(), FRAME), states)
    kinds = [(e["kind"], e["event"]) for e in events if e["event"] != "update"]
    assert kinds == [("loitering", "open"), ("loitering", "close")]
    lo = opens(events, "loitering")[0]
    assert lo["t"] == pytest.approx(120.0)
    assert lo["severity"] == "high" and lo["side"] == "north"
    assert lo["evidence"] == ["radar-2", "uav-1"]
    close = events[-1]
    assert close["reason"] == "loiter_ended" and 155.0 < close["t"] < 170.0


def test_lost_inside_on_deletion_and_hold():
    engine = AlertEngine([strip_zone()], load_rules(), FRAME)
    inside = snapshot([0.0, 0.0], [0.0, 0.0], cls="vehicle", ids=[42])
    run(engine, [inside] * 10)  # t = 0 .. 4.5: incursion open at 2.0
    assert [a["kind"] for a in engine.open_alerts()] == ["incursion"]
    empty = snapshot(np.zeros((0, 2)), np.zeros((0, 2)))
    events = engine.step(5.0, **empty, deleted_ids=np.array([42]))
    assert [(e["kind"], e["event"], e["reason"]) for e in events] == [
        ("incursion", "close", "track_deleted"),
        ("lost_inside", "open", None),
    ]
    lost = events[1]
    assert lost["severity"] == "high" and lost["related_alert_id"] == "zone-a:incursion:42:0"
    assert lost["position"]["east"] == 0.0 and lost["track_id"] == 42
    assert [a["alert_id"] for a in engine.open_alerts()] == ["zone-a:lost_inside:42:0"]
    # Timer steps without a snapshot: the alert closes once its hold (120 s) is over.
    assert engine.step(60.0) == []
    closed = engine.step(125.0)
    assert [(e["kind"], e["event"], e["reason"]) for e in closed] == [
        ("lost_inside", "close", "hold_elapsed")
    ]
    assert engine.open_alerts() == []


def test_vanished_track_counts_as_lost():
    engine = AlertEngine([strip_zone()], load_rules(), FRAME)
    run(engine, [snapshot([0.0, 0.0], [0.0, 0.0], ids=[7])] * 10)
    events = engine.step(5.0, **snapshot(np.zeros((0, 2)), np.zeros((0, 2))))
    assert [(e["kind"], e["event"], e["reason"]) for e in events] == [
        ("incursion", "close", "track_gone"),
        ("lost_inside", "open", None),
    ]


def test_timer_step_opens_after_dwell_with_evidence():
    engine = AlertEngine([strip_zone()], load_rules(), FRAME)
    assert engine.step(0.0, **snapshot([0, 0], [0, 0]), updated_ids=[1], sensor_id="ugs-9") == []
    assert engine.step(1.0) == []
    events = engine.step(2.5)
    assert [(e["kind"], e["event"]) for e in events] == [("incursion", "open")]
    assert events[0]["evidence"] == ["ugs-9"] and events[0]["t"] == 2.5


def test_replay_is_deterministic_and_state_dict_resumes():
    states = crossing()
    a = run(AlertEngine([strip_zone()], load_rules(), FRAME), states)
    b = run(AlertEngine([strip_zone()], load_rules(), FRAME), states)
    assert a == b
    first = AlertEngine([strip_zone()], load_rules(), FRAME)
    head = run(first, states[:220])  # inside the zone, incursion open
    assert [x["kind"] for x in first.open_alerts()] == ["incursion"]
    state = first.state_dict()
    second = AlertEngine([strip_zone()], load_rules(), FRAME)
    second.load_state_dict(state)
    assert second.open_alerts() == first.open_alerts()
    tail = run(second, states[220:], t0=220 * 0.5, sensors=("uav-1", "radar-2"))
    assert head + tail == a


def test_class_filter_and_severity_by_class():
    rules = RuleSet.from_toml(
        '[zones."*".incursion]\nclasses = ["vehicle"]\nseverity = { vehicle = "critical" }\n'
    )
    engine = AlertEngine([strip_zone()], rules, FRAME)
    both = snapshot([[0, 0], [10, 0]], [[0, 0], [0, 0]])
    both["cls"] = np.array([CLASSES.index("person"), CLASSES.index("vehicle")], np.uint8)
    events = run(engine, [both] * 6)
    assert [(e["track_id"], e["severity"]) for e in opens(events, "incursion")] == [(2, "critical")]


def test_bad_snapshot_is_a_clear_error():
    engine = AlertEngine([strip_zone()], load_rules(), FRAME)
    snap = snapshot([0, 0], [0, 0])
    snap["x"] = snap["x"][:, :3]
    with pytest.raises(ValueError, match="x must have shape"):
        engine.step(0.0, **snap)
    engine.step(1.0)
    with pytest.raises(ValueError, match="before the previous"):
        engine.step(0.5)


# --------------------------------------------------------------------------- rules


def test_default_rules_ship_and_parse():
    rules = load_rules()
    r = rules.for_zone("anything")
    assert r.incursion.p_close < r.incursion.p_open
    assert r.predicted_incursion.horizon_close >= r.predicted_incursion.horizon
    assert {k: r[k].enabled for k in KINDS} == dict.fromkeys(KINDS, True)
    assert r.incursion.severity_for("vehicle") == "high"


def test_zone_rules_override_star_field_by_field():
    rules = RuleSet.from_toml(
        """
        [zones."*".incursion]
        p_open = 0.7
        severity = { person = "low" }
        [zones."zone-a".incursion]
        dwell_open = 5
        severity = { vehicle = "critical" }
        """
    )
    a = rules.for_zone("zone-a").incursion
    assert (a.p_open, a.dwell_open) == (0.7, 5.0)
    assert a.severity_for("person") == "low" and a.severity_for("vehicle") == "critical"
    assert rules.for_zone("zone-b").incursion.dwell_open == 2.0


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[zones."a".incursion]\np_open = "high"', 'zones."a".incursion.p_open'),
        ('[zones."a".incursion]\np_close = 0.8', 'zones."a".incursion.p_close'),
        ('[zones."*".incursion]\np_opn = 0.5', 'zones."*".incursion.p_opn'),
        ('[zones."a".incurson]\nenabled = true', 'zones."a".incurson'),
        (
            '[zones."a".loitering]\nseverity = { person = "severe" }',
            'zones."a".loitering.severity.person',
        ),
        (
            '[zones."a".loitering]\nseverity = { tank = "high" }',
            'zones."a".loitering.severity.tank',
        ),
        ('[zones."a".exit]\nclasses = ["person", "cat"]', 'zones."a".exit.classes'),
        ('[zones."a".exit]\nenabled = 1', 'zones."a".exit.enabled'),
        (
            '[zones."a".predicted_incursion]\nhorizon_close = 10',
            'zones."a".predicted_incursion.horizon_close',
        ),
        ('[zones."a".loitering]\nradius = -1', 'zones."a".loitering.radius'),
        ('[zones."a".incursion]\ndwell_open = nan', 'zones."a".incursion.dwell_open'),
        ("version = 2", "version"),
        ("zone = 1", "zone"),
        ("[zones", "<toml>"),
    ],
)
def test_rules_errors_name_the_field(toml, field):
    with pytest.raises(RulesError) as info:
        RuleSet.from_toml(toml)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_rules_file_error_names_the_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[zones."*".incursion]\np_open = 2\n')
    with pytest.raises(RulesError, match=r"p_open.*rules\.toml"):
        load_rules(path)


def test_rules_for_an_unknown_zone_are_refused():
    rules = RuleSet.from_toml('[zones."zone-x".incursion]\np_open = 0.7')
    with pytest.raises(ValueError, match="zone-x"):
        AlertEngine([strip_zone()], rules, FRAME)
