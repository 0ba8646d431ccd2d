"""Truth probes: headed for the zone, came close, did not go in."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from replay.scoring.probes import probe_events

# An east-west strip, north -100..100 m; targets come from the north at 8 m/s.
ZONE = [("zone-a", shapely.box(-4e3, -100.0, 4e3, 100.0))]
RULE = {"horizon": 45.0, "max_distance": 500.0, "tolerance": 2.0}


def truth(paths: dict[int, list[tuple[float, float, float, float]]]):
    """Per-second samples of targets given as lists of (east, north, v_east, v_north)."""
    steps = max(len(p) for p in paths.values())
    times = np.arange(steps, dtype=float)
    ids, states = [], []
    for k in range(steps):
        live = [(tid, p[k]) for tid, p in paths.items() if k < len(p)]
        ids.append(np.array([tid for tid, _ in live], np.int64))
        states.append(np.array([s for _, s in live], float).reshape(-1, 4))
    return times, ids, states


def leg(north0: float, v: float, seconds: int, east: float = 0.0):
    return [(east, north0 + v * k, 0.0, v) for k in range(seconds)]


def turn_at(closest: float, speed: float = 8.0):
    """In from 1,200 m out to ``closest`` m from the edge, a wait, then back out."""
    n_in = int((1200.0 - closest) / speed)
    path = leg(100.0 + 1200.0, -speed, n_in)
    turn = path[-1][1] - speed
    return path + [(0.0, turn, 0.0, 0.0)] * 20 + leg(turn, speed, 80)


def test_an_approach_that_turns_back_near_the_line_is_a_probe():
    events = probe_events(*truth({7: turn_at(150.0)}), ZONE, **RULE)
    assert len(events) == 1
    e = events[0]
    assert (e.target, e.zone) == (7, "zone-a")
    assert e.info["closest"] == pytest.approx(150.0, abs=8.0)
    # The window: first heading-in second - tolerance .. last + horizon + tolerance.
    assert e.t_lo == pytest.approx(e.info["t_start"] - 2.0)
    assert e.t_hi == pytest.approx(e.info["t_end"] + 45.0 + 2.0)
    assert e.info["t_start"] <= e.t_ref <= e.t_hi


def test_an_approach_that_goes_in_is_not_a_probe():
    assert probe_events(*truth({7: leg(900.0, -8.0, 150)}), ZONE, **RULE) == []


def test_a_turn_far_from_the_line_is_not_a_probe():
    # At 16 m/s it heads in (its 45 s line reaches the zone from 720 m out), but turns
    # 600 m out: beyond max_distance, though not beyond a wider one.
    assert probe_events(*truth({7: turn_at(600.0, 16.0)}), ZONE, **RULE) == []
    wider = {**RULE, "max_distance": 700.0}
    assert len(probe_events(*truth({7: turn_at(600.0, 16.0)}), ZONE, **wider)) == 1


def test_a_patrol_along_the_line_is_not_a_probe():
    patrol = [(-2e3 + 5.0 * k, 250.0, 5.0, 0.0) for k in range(300)]
    assert probe_events(*truth({7: patrol}), ZONE, **RULE) == []


def test_two_approaches_are_two_probes_and_targets_are_kept_apart():
    twice = turn_at(150.0) + turn_at(200.0)
    events = probe_events(*truth({7: twice, 9: turn_at(300.0), 11: leg(900.0, -8.0, 150)}),
                          ZONE, **RULE)
    assert sorted((e.target, round(e.info["closest"], -1)) for e in events) == [
        (7, 150.0), (7, 200.0), (9, 300.0)
    ]


def test_eval_counts_the_false_warnings_a_true_probe_followed():
    from replay.scoring.evaluate import _false_then_probe
    from replay.scoring.metrics import AlertScores, TruthEvent, score_kind

    def alert(alert_id, kind, t, track, related=None):
        return {"alert_id": alert_id, "kind": kind, "event": "open", "zone": "zone-a",
                "track_id": track, "t": t, "related_alert_id": related}

    alerts = [
        alert("p1", "predicted_incursion", 10.0, 1),   # target 1 turns back: a probe
        alert("p2", "predicted_incursion", 12.0, 2),   # target 2 turns back, no probe alert
        alert("p3", "predicted_incursion", 14.0, 3),   # followed by a probe of no truth probe
        alert("b1", "probe", 40.0, 1, related="p1"),
        alert("b3", "probe", 45.0, 3, related="p3"),
    ]
    truth_probes = [TruthEvent(1, "zone-a", 30.0, 5.0, 80.0)]  # only target 1 probed
    track_to_truth = lambda track, t: track  # noqa: E731 (track k follows target k)
    scores = AlertScores("", {
        "predicted_incursion": score_kind("predicted_incursion", [], alerts, track_to_truth),
        "probe": score_kind("probe", truth_probes, alerts, track_to_truth, overlap=False),
    })
    assert [a.outcome for a in scores["probe"].alerts] == ["true", "false"]
    # p2 and p3 are false warnings too, but only p1 was followed by a true probe.
    assert _false_then_probe(scores, alerts) == 1
