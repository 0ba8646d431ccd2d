"""GOSPA: hand-made cases with known answers, and agreement with Stone Soup."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from replay.scoring.gospa import gospa, gospa_series


def test_perfect_track_missed_truth_and_false_track():
    # Truth 0 has a perfect track, truth 1 has none, track 1 is far from everything.
    truth = np.array([[0.0, 0.0], [100.0, 0.0]])
    tracks = np.array([[0.0, 0.0], [0.0, 500.0]])
    c, p = 10.0, 2.0
    r = gospa(truth, tracks, c=c, p=p)
    assert r.localisation == 0.0
    assert r.missed == pytest.approx(c**p / 2)
    assert r.false == pytest.approx(c**p / 2)
    assert (r.n_missed, r.n_false) == (1, 1)
    assert r.distance == pytest.approx((c**p) ** (1 / p))
    np.testing.assert_array_equal(r.assignment, [0, -1])


def test_localisation_error_and_cut_off():
    truth = np.array([[0.0, 0.0], [50.0, 0.0]])
    tracks = np.array([[3.0, 4.0], [50.0, 20.0]])  # 5 m off, and 20 m off (beyond c)
    r = gospa(truth, tracks, c=10.0, p=1.0)
    assert r.localisation == pytest.approx(5.0)
    assert (r.n_missed, r.n_false) == (1, 1)
    assert r.distance == pytest.approx(5.0 + 10.0 / 2 + 10.0 / 2)
    # A pair exactly at the cut-off counts as a miss plus a false track.
    r = gospa(np.zeros((1, 2)), np.array([[10.0, 0.0]]), c=10.0, p=2.0)
    assert (r.localisation, r.n_missed, r.n_false) == (0.0, 1, 1)


def test_empty_sets():
    r = gospa(np.empty((0, 2)), np.empty((0, 2)), c=5.0)
    assert r.distance == 0.0 and r.assignment.shape == (0,)
    r = gospa(np.empty((0, 2)), np.ones((3, 2)), c=5.0, p=1.0)
    assert (r.false, r.missed, r.n_false) == (7.5, 0.0, 3)
    r = gospa(np.ones((2, 2)), np.empty((0, 2)), c=5.0, p=1.0)
    assert (r.missed, r.false, r.n_missed) == (5.0, 0.0, 2)
    np.testing.assert_array_equal(r.assignment, [-1, -1])


def test_alpha_below_two_charges_only_the_cardinality_difference():
    truth = np.array([[0.0, 0.0]])
    tracks = np.array([[100.0, 0.0], [200.0, 0.0]])
    r = gospa(truth, tracks, c=10.0, p=1.0, alpha=1.0)
    # One pair at the cut-off (10) plus one extra track at c/alpha (10).
    assert r.distance == pytest.approx(20.0)
    assert r.localisation + r.missed + r.false == pytest.approx(r.distance)


def test_parts_add_up_and_series_matches_single_steps():
    rng = np.random.default_rng(3)
    truths = [rng.uniform(0, 100, (rng.integers(0, 6), 2)) for _ in range(20)]
    tracks = [rng.uniform(0, 100, (rng.integers(0, 6), 2)) for _ in range(20)]
    s = gospa_series(truths, tracks, c=20.0, p=2.0)
    assert len(s) == 20
    np.testing.assert_allclose(s.distance**2, s.localisation + s.missed + s.false)
    for k in (0, 7, 19):
        one = gospa(truths[k], tracks[k], c=20.0, p=2.0)
        assert s.distance[k] == one.distance
        np.testing.assert_array_equal(s.assignments[k], one.assignment)
    assert s.summary()["distance"] == pytest.approx(s.distance.mean())
    with pytest.raises(ValueError, match="steps"):
        gospa_series(truths, tracks[:-1], c=1.0)


@pytest.mark.parametrize("bad", [dict(c=0.0), dict(c=1.0, p=0.5), dict(c=1.0, alpha=3.0)])
def test_bad_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        gospa(np.zeros((1, 2)), np.zeros((1, 2)), **bad)


def _stonesoup_gospa(truth, tracks, c, p):
    """Stone Soup's value for one time step, built from its State objects."""
    from stonesoup.metricgenerator.ospametric import GOSPAMetric
    from stonesoup.types.array import StateVector
    from stonesoup.types.state import State

    when = datetime.datetime(2024, 1, 1)
    truth_states = [State(StateVector(x), timestamp=when) for x in truth]
    track_states = [State(StateVector(y), timestamp=when) for y in tracks]
    metric, assignment = GOSPAMetric(c=c, p=p).compute_gospa_metric(track_states, truth_states)
    return metric.value, np.asarray(assignment)


def test_agrees_with_stonesoup():
    pytest.importorskip("stonesoup")
    rng = np.random.default_rng(20240501)
    worst = 0.0
    cases = 0
    for c in (1.0, 5.0, 25.0):
        for p in (1.0, 2.0, 3.0):
            for _ in range(25):
                n, m = rng.integers(0, 8, size=2)
                if n == m == 0:
                    continue  # Stone Soup needs at least one state to know the time
                # Spread comparable to c so that all three parts occur.
                truth = rng.uniform(0, 4 * c, (n, 2))
                tracks = rng.uniform(0, 4 * c, (m, 2))
                ours = gospa(truth, tracks, c=c, p=p, alpha=2.0)
                theirs, their_assignment = _stonesoup_gospa(truth, tracks, c, p)
                for ours_value, key in (
                    (ours.distance, "distance"),
                    (ours.localisation, "localisation"),
                    (ours.missed, "missed"),
                    (ours.false, "false"),
                ):
                    err = abs(ours_value - float(theirs[key]))
                    worst = max(worst, err)
                    assert err <= 1e-9, (key, n, m, c, p, ours_value, theirs[key])
                if n and m:
                    np.testing.assert_array_equal(ours.assignment, their_assignment)
                cases += 1
    assert cases > 200
    print(f"GOSPA vs Stone Soup: {cases} cases, worst absolute difference {worst:.3g}")
