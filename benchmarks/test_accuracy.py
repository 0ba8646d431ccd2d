"""Smoke run of the accuracy comparison (``benchmarks/accuracy.py``) for CI.

``pytest benchmarks --benchmark-disable`` runs it on small scenes; the full comparison
with its printed table is ``python -m benchmarks.accuracy`` (``make bench``).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stonesoup")

from benchmarks import accuracy  # noqa: E402


def test_cv_scene_scores_both_trackers():
    scans, pd, density = accuracy.cv_scenario(30, 8)
    assert pd == 0.9 and density == pytest.approx(50 / 8e8)
    scores = accuracy.run(scans, 0.05)
    for name in ("bufferzone", "stonesoup"):
        summary = scores[name].summary()
        assert summary["gospa"] > 0 and summary["ms_per_scan"] > 0
    # after two scans both hold most targets
    assert scores["bufferzone"].n_missed[-1] <= 0.3 * len(scans[-1].truth_ids)


def test_multi_sensor_scene_has_gaps_and_a_late_satellite():
    scans = accuracy.multi_sensor_scenario(21, n=30)
    kinds = {b.sensor_kind for s in scans for b in s.batches}
    assert kinds == {"radar", "drone", "satellite"}
    assert all(b.sensor_kind != "satellite" for s in scans[:14] for b in s.batches)
    scores = accuracy.run(scans, 0.05, stonesoup=False)
    table = accuracy.table("smoke", scores, multi=True)
    assert "gaps held" in table and "bufferzone" in table and "first look" in table
    ours = scores["bufferzone"]
    # on scan 0 every target inside coverage is on its first look; later only some are
    assert ours.missed_first_look[0] == ours.missed_in_coverage[0] > 0
    assert all(f <= m for f, m in zip(ours.missed_first_look, ours.missed_in_coverage, strict=True))
    assert sum(ours.missed_first_look[1:]) < sum(ours.missed_in_coverage[1:])


def test_seeds_table_lists_each_seed_and_the_spread():
    text = accuracy.seeds_table(30, 8, [1, 2])
    rows = [line for line in text.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert len(rows) == 2
    assert "over 2 seeds: mean" in text and "range" in text


def test_two_look_floor_counts_targets_not_yet_seen_twice():
    scans, _, _ = accuracy.cv_scenario(30, 8)
    floor = accuracy.two_look_misses(scans)
    # Scan 0: nobody has two looks; after that only targets missed on a look (or born).
    assert floor[0] == len(scans[0].truth_ids)
    assert floor[2] < 0.5 * len(scans[2].truth_ids)
    # The labels are the simulator's own: one true detection per detected target per scan.
    assert all(len(np.unique(s.detected)) == len(s.detected) for s in scans)
    assert all(len(s.detected) <= len(s.batches[0]) for s in scans)
    scores = accuracy.run(scans, 0.05)
    # Both trackers need a second detection: neither can miss fewer than the floor.
    for name in ("bufferzone", "stonesoup"):
        assert np.mean(scores[name].n_missed) >= floor.mean()
    assert "Even with perfect association" in accuracy.table("smoke", scores, scans=scans)


def test_multi_sensor_floor_counts_two_sensors_in_one_second_as_two_looks():
    scans = accuracy.multi_sensor_scenario(6, n=30)
    inside = accuracy.two_look_misses(scans, in_coverage=True)
    total = accuracy.two_look_misses(scans)
    assert all(i <= t for i, t in zip(inside, total, strict=True))
    twice = np.count_nonzero(np.bincount(scans[0].detected) >= 2)
    # targets seen by two sensors on scan 0 are off the floor at once
    assert twice > 0 and total[0] == len(scans[0].truth_ids) - twice
