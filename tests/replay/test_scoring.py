"""Alert scoring and track continuity on hand-made cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from replay.scoring.gospa import gospa_series
from replay.scoring.metrics import (
    NO_TARGET,
    AssignmentRecord,
    AssociationTable,
    assignment_records,
    score_alerts,
    track_metrics,
)

INCURSIONS = [
    {
        "target": 1,
        "zone": "zone-a",
        "t_enter": 10.0,
        "t_exit": 30.0,
        "side": "north",
        "cls": "person",
    },
    {
        "target": 2,
        "zone": "zone-a",
        "t_enter": 20.0,
        "t_exit": None,
        "side": "south",
        "cls": "vehicle",
    },
    {
        "target": 3,
        "zone": "zone-b",
        "t_enter": 40.0,
        "t_exit": 50.0,
        "side": "north",
        "cls": "person",
    },
]

# Tracks 101 -> target 1; 102 and 105 -> target 2 (a fragmented track); 103 -> nothing.
ASSOCIATION = {101: 1, 102: 2, 105: 2}


def _alert(alert_id, t, track_id, zone="zone-a", kind="incursion", event="open"):
    return {
        "alert_id": alert_id,
        "kind": kind,
        "event": event,
        "zone": zone,
        "track_id": track_id,
        "t": t,
        "position": {"east": 0.0, "north": 0.0},
    }


ALERTS = [
    _alert("a1", 11.0, 101),  # target 1, 1 s late: true
    _alert("a1", 15.0, 101, event="update"),  # not an open: ignored
    _alert("a2", 23.0, 102),  # target 2, 3 s late: true
    _alert("a3", 25.0, 105),  # target 2 again, another track: duplicate
    _alert("a4", 45.0, 103, zone="zone-b"),  # track of no target: false
    _alert("a5", 35.0, 101),  # target 1 left at 30 (+2 s tolerance): false
    _alert("a1", 31.0, 101, event="close"),
    _alert("l1", 12.0, 101, kind="loitering"),  # other kind: counted, not scored
]


def test_alert_scores_on_a_hand_made_case():
    scores = score_alerts(INCURSIONS, ALERTS, lambda k, t: ASSOCIATION.get(k), tolerance=2.0)
    s = scores["incursion"]
    assert (s.n_truth, s.n_opened, s.n_true, s.n_duplicate, s.n_false) == (3, 5, 2, 1, 2)
    assert s.recall == pytest.approx(2 / 3)
    assert s.precision == pytest.approx(3 / 5)
    assert s.precision_strict == pytest.approx(2 / 5)
    np.testing.assert_allclose(s.latencies, [1.0, 3.0])
    assert s.latency_median == pytest.approx(2.0)
    assert s.latency_p90 == pytest.approx(2.8)
    assert s.latency_max == pytest.approx(3.0)
    outcomes = {m.alert_id: m.outcome for m in s.alerts}
    assert outcomes == {"a1": "true", "a2": "true", "a3": "duplicate", "a4": "false", "a5": "false"}
    assert [e.alert_id for e in s.episodes] == ["a1", "a2", None]
    assert [e.n_alerts for e in s.episodes] == [1, 2, 0]
    assert scores.opened_by_kind == {"incursion": 5, "loitering": 1}
    assert "t_enter - 2 s" in scores.rule and "duplicate" in scores.rule


def test_lead_lets_predicted_alerts_match_early():
    # Opened 6 s before entry and closed 1 s later, well before the target crossed.
    alerts = [
        _alert("p1", 4.0, 101, kind="predicted_incursion"),
        _alert("p1", 5.0, 101, kind="predicted_incursion", event="close"),
    ]
    track_to_truth = lambda k, t: ASSOCIATION.get(k)  # noqa: E731
    without = score_alerts(INCURSIONS, alerts, track_to_truth, kinds=["predicted_incursion"])
    assert without["predicted_incursion"].n_false == 1
    scores = score_alerts(
        INCURSIONS,
        alerts,
        track_to_truth,
        kinds=["incursion", "predicted_incursion"],
        lead={"predicted_incursion": 10.0},
    )
    p = scores["predicted_incursion"]
    assert p.n_true == 1 and p.latencies.tolist() == [-6.0]
    assert scores["incursion"].n_opened == 0 and math.isnan(scores["incursion"].precision)
    assert math.isnan(scores["incursion"].latency_median)


def test_one_alert_per_repeat_episode():
    # The same target enters the same zone twice: two alerts, two true matches.
    incursions = [
        {"target": 1, "zone": "z", "t_enter": 0.0, "t_exit": 10.0, "side": "", "cls": ""},
        {"target": 1, "zone": "z", "t_enter": 12.0, "t_exit": 20.0, "side": "", "cls": ""},
    ]
    alerts = [_alert("x", 0.5, 7, zone="z"), _alert("y", 12.5, 7, zone="z")]
    s = score_alerts(incursions, alerts, lambda k, t: 1)["incursion"]
    assert (s.n_true, s.n_duplicate, s.recall) == (2, 0, 1.0)
    np.testing.assert_allclose(s.latencies, [0.5, 0.5])


def test_association_table_nearest_record_in_time():
    table = AssociationTable(
        [(0.0, 7, 101), (1.0, 7, 101), (2.0, NO_TARGET, 101), (1.0, 8, 102)], max_gap=1.5
    )
    assert table(101, -0.4) == 7
    assert table(101, 1.5) == 7  # tie between 1.0 and 2.0: the earlier
    assert table(101, 1.6) is None  # nearest record says no target
    assert table(102, 2.4) == 8 and table(102, 2.6) is None  # beyond max_gap
    assert table(999, 0.0) is None


def test_track_metrics_fragmentation_and_id_switches():
    records = [
        # target 1: 101, 101, (missed), 101, 104, 101 -> ids {101, 104}, 2 switches
        (0.0, 1, 101),
        (1.0, 1, 101),
        (3.0, 1, 101),
        (4.0, 1, 104),
        (5.0, 1, 101),
        # target 2: one track throughout
        (0.0, 2, 102),
        (1.0, 2, 102),
        # a false track
        (1.0, NO_TARGET, 103),
    ]
    m = track_metrics(records, targets=[1, 2, 3])
    assert m.per_target[1].n_tracks == 2 and m.per_target[1].id_switches == 2
    assert m.per_target[1].track_ids == (101, 104) and m.per_target[1].steps_tracked == 5
    assert m.per_target[2].n_tracks == 1 and m.per_target[2].id_switches == 0
    assert m.fragmentation == pytest.approx(1.5)
    assert m.id_switches == 2
    assert m.never_tracked == (3,)


def test_records_from_gospa_feed_the_association_and_track_metrics():
    truth = [np.array([[0.0, 0.0], [100.0, 0.0]])] * 3
    tracks = [
        np.array([[1.0, 0.0], [100.0, 1.0]]),
        np.array([[100.0, 1.0], [0.5, 0.0], [500.0, 500.0]]),  # order changes, a false track
        np.array([[100.0, 1.0]]),  # target 1 missed
    ]
    truth_ids = [np.array([1, 2])] * 3
    track_ids = [np.array([11, 12]), np.array([12, 13, 99]), np.array([12])]
    series = gospa_series(truth, tracks, c=10.0)
    records = assignment_records([0.0, 1.0, 2.0], truth_ids, track_ids, series.assignments)
    assert AssignmentRecord(1.0, NO_TARGET, 99) in records
    assert AssignmentRecord(1.0, 1, 13) in records
    table = AssociationTable(records)
    assert table(11, 0.0) == 1 and table(13, 1.0) == 1 and table(99, 1.0) is None
    m = track_metrics(records)
    assert m.per_target[1].track_ids == (11, 13) and m.per_target[1].id_switches == 1
    assert m.per_target[2].n_tracks == 1


def test_an_alert_open_before_entry_and_still_open_at_it_is_true():
    # Issue 16: opened 2.7 s before the recorded entry on the right track, still open
    # when the target crossed: one true alert, no miss, no false alarm.
    alerts = [_alert("e1", 10.0 - 2.7, 101), _alert("e1", 28.0, 101, event="close")]
    s = score_alerts(INCURSIONS[:1], alerts, lambda k, t: ASSOCIATION.get(k))["incursion"]
    assert (s.n_true, s.n_false, s.recall) == (1, 0, 1.0)
    np.testing.assert_allclose(s.latencies, [-2.7])
    # Closed again 1 s after opening (before the 2 s tolerance): a false alarm and a miss.
    early = [_alert("e2", 10.0 - 4.0, 101), _alert("e2", 7.0, 101, event="close")]
    s = score_alerts(INCURSIONS[:1], early, lambda k, t: ASSOCIATION.get(k))["incursion"]
    assert (s.n_true, s.n_false, s.recall) == (0, 1, 0.0)


def test_exit_alerts_are_scored_against_the_truth_exit():
    from replay.scoring.metrics import exit_events, score_kind

    events = exit_events(INCURSIONS, tolerance=2.0, lag=10.0)
    assert [(e.target, e.t_ref) for e in events] == [(1, 30.0), (3, 50.0)]  # 2 never left
    alerts = [
        _alert("x1", 34.0, 101, kind="exit"),  # target 1 left at 30: 4 s late, true
        _alert("x2", 20.0, 102, kind="exit"),  # target 2 never left: false
    ]
    s = score_kind("exit", events, alerts, lambda k, t: ASSOCIATION.get(k))
    assert (s.n_truth, s.n_true, s.n_false) == (2, 1, 1)
    np.testing.assert_allclose(s.latencies, [4.0])


def test_truth_loitering_follows_the_rule_and_matches_loitering_alerts():
    import shapely

    from replay.scoring.metrics import loiter_events, score_kind

    zone = shapely.Polygon([(-100, -100), (100, -100), (100, 100), (-100, 100)])
    times = np.arange(0.0, 301.0)
    # Target 1 stands on the zone's edge from t=50 to t=270, far away before and after;
    # target 2 walks east through the zone at 1 m/s (never 120 s within 50 m of a point).
    walk = np.where((times >= 50) & (times < 270), -100.0, -1000.0)
    ids = [np.array([1, 2]) for _ in times]
    pos = [np.array([[walk[k], 0.0], [-300.0 + t, 20.0]]) for k, t in enumerate(times)]
    events = loiter_events(times, ids, pos, [("z", zone)], radius=50.0, time=120.0,
                           band=200.0, radius_close=100.0, tolerance=2.0)
    assert [(e.target, e.t_ref) for e in events] == [(1, 170.0)]
    assert events[0].t_hi == pytest.approx(270.0 + 2.0)  # gone at t=270
    alerts = [_alert("L", 172.0, 101, zone="z", kind="loitering"),
              _alert("M", 100.0, 102, zone="z", kind="loitering")]
    s = score_kind("loitering", events, alerts, lambda k, t: {101: 1, 102: 2}[k])
    assert (s.n_true, s.n_false, s.recall) == (1, 1, 1.0)
    np.testing.assert_allclose(s.latencies, [2.0])


def test_lost_inside_alerts_are_true_when_the_lost_track_s_target_was_inside():
    # As eval scores them: the lost track is looked up by its last association, however
    # long before the alert; the alert is true when that target was inside the zone
    # (within an incursion's window) at the alert's time. Truth cannot say a track
    # should have been lost, so there is no recall.
    from replay.scoring.metrics import incursion_events, score_kind

    # Track 101 followed target 1 until t=14, track 104 target 3 until t=20.
    last_seen = AssociationTable([(t, 1, 101) for t in range(0, 15)]
                                 + [(t, 3, 104) for t in range(0, 21)])
    alerts = [
        _alert("L1", 18.0, 101, kind="lost_inside"),  # target 1 inside (10..30): true
        _alert("L2", 21.0, 104, kind="lost_inside"),  # target 3 enters zone-b at 40: false
        _alert("L3", 22.0, 103, kind="lost_inside"),  # a track of no target: false
    ]
    s = score_kind("lost_inside", incursion_events(INCURSIONS, 2.0), alerts, last_seen,
                   count_recall=False)
    assert (s.n_opened, s.n_true, s.n_false, s.n_truth) == (3, 1, 2, 0)
    assert math.isnan(s.recall) and s.precision == pytest.approx(1 / 3)
    assert [m.outcome for m in s.alerts] == ["true", "false", "false"]
