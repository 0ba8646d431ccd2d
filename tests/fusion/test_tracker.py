"""The tracker end to end on synthetic scenarios, in-process."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from fusion import DetectionBatch, Tracker, TrackerConfig
from fusion.config import ConfigError

AREA = np.array([40_000.0, 20_000.0])
NOISE = 20.0


def synthetic_run(seed, n_targets=100, scans=120, pd=0.9, clutter=50, config=None):
    """Targets at 0-20 m/s with births and deaths, one all-seeing 1 Hz sensor.

    Returns per-scan lists of (truth ids, truth positions, confirmed ids, confirmed positions).
    """
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, AREA, size=(n_targets, 2))
    heading = rng.uniform(0, 2 * np.pi, n_targets)
    speed = rng.uniform(0, 20, n_targets)
    velocity = np.stack([np.cos(heading), np.sin(heading)], axis=1) * speed[:, None]
    birth = rng.uniform(0, scans / 2, n_targets)
    death = birth + rng.uniform(40, scans, n_targets)
    tracker = Tracker(config or TrackerConfig())
    history = []
    for k in range(scans):
        t = float(k)
        alive = np.flatnonzero((birth <= t) & (t < death))
        truth = start[alive] + velocity[alive] * (t - birth[alive])[:, None]
        seen = rng.random(alive.size) < pd
        z = truth[seen] + rng.normal(scale=NOISE, size=(seen.sum(), 2))
        false = rng.uniform(0, AREA, size=(rng.poisson(clutter), 2))
        detections = np.vstack([z, false])[rng.permutation(seen.sum() + false.shape[0])]
        tracker.process(
            DetectionBatch.build("radar-1", "radar", k, t, detections, np.eye(2) * NOISE**2)
        )
        snap = tracker.confirmed()
        # Targets that died in the last few scans still have a coasting track until
        # it has missed max_misses times: that is deletion latency, not a false track.
        recent = np.flatnonzero((death <= t) & (t - death < 6.0) & (birth <= t))
        last_seen = start[recent] + velocity[recent] * (death[recent] - birth[recent])[:, None]
        history.append((alive, truth, t - birth[alive], snap.ids, snap.x[:, :2], last_seen))
    return tracker, history


@pytest.fixture(scope="module")
def run_a():
    return synthetic_run(seed=20260101)


def test_targets_alive_30s_have_confirmed_tracks(run_a):
    _, history = run_a
    covered = total = 0
    for _, truth, age, _, tracks, _ in history:
        old = age >= 30
        if not old.any() or len(tracks) == 0:
            total += old.sum()
            continue
        distance, _ = cKDTree(tracks).query(truth[old])
        covered += int((distance < 5 * NOISE).sum())
        total += int(old.sum())
    assert total > 3000
    assert covered / total >= 0.95


def test_false_confirmed_tracks_are_rare(run_a):
    _, history = run_a
    false = []
    for _, truth, _, _, tracks, last_seen in history:
        if len(tracks) == 0:
            false.append(0)
            continue
        distance, _ = cKDTree(np.vstack([truth, last_seen])).query(tracks)
        false.append(int((distance > 200).sum()))
    assert np.mean(false) <= 0.5


def test_ids_do_not_swap_between_well_separated_targets(run_a):
    _, history = run_a
    owner = {}
    swaps = 0
    for alive, truth, _, ids, tracks, _ in history:
        if len(tracks) == 0 or len(truth) < 2:
            continue
        spacing, _ = cKDTree(truth).query(truth, k=2)
        distance, nearest = cKDTree(truth).query(tracks)
        for track_id, d, target in zip(ids, distance, nearest, strict=True):
            if d > 5 * NOISE or spacing[target, 1] < 1000:
                continue
            previous = owner.setdefault(int(track_id), int(alive[target]))
            swaps += previous != int(alive[target])
    assert len(owner) > 80
    assert swaps == 0


def test_clutter_alone_confirms_almost_nothing():
    tracker, history = synthetic_run(seed=3, n_targets=0, scans=60, clutter=200)
    assert np.mean([len(ids) for _, _, _, ids, _, _ in history]) <= 0.5


def batch(seq, t, z, coverage=None, sensor="radar-1", var=100.0):
    z = np.asarray(z, dtype=float).reshape(-1, 2)
    return DetectionBatch.build(sensor, "radar", seq, t, z, np.eye(2) * var, coverage=coverage)


def confirmed_track(tracker, start=(0.0, 0.0), velocity=(10.0, 0.0), scans=6):
    for k in range(scans):
        tracker.process(batch(k, float(k), np.add(start, np.multiply(velocity, k))))
    assert len(tracker.confirmed()) == 1
    return tracker.confirmed().ids[0]


def test_track_outside_coverage_is_neither_updated_nor_missed():
    tracker = Tracker()
    track_id = confirmed_track(tracker)
    far_away = np.array([[5000.0, 5000.0], [6000.0, 5000.0], [6000.0, 6000.0], [5000.0, 6000.0]])
    for k in range(6, 16):
        result = tracker.process(batch(k, float(k), np.empty((0, 2)), coverage=far_away))
        assert result.n_visible == 0 and result.deleted.size == 0
    assert tracker.confirmed().ids.tolist() == [track_id]
    assert tracker.tracks.misses_in_row[0] == 0
    # inside coverage, misses count and delete it: three at the radar default Pd 0.85
    for k in range(16, 18):
        assert tracker.process(batch(k, float(k), np.empty((0, 2)))).deleted.size == 0
    assert tracker.process(batch(18, 18.0, np.empty((0, 2)))).deleted.tolist() == [track_id]


def test_m_of_n_lifecycle_is_still_available():
    tracker = Tracker(TrackerConfig(lifecycle="m_of_n", max_misses=2, min_miss_time=0.0))
    track_id = confirmed_track(tracker)
    assert tracker.process(batch(6, 6.0, np.empty((0, 2)))).deleted.size == 0
    assert tracker.process(batch(7, 7.0, np.empty((0, 2)))).deleted.tolist() == [track_id]


def test_ids_are_never_reused():
    tracker = Tracker()
    first = confirmed_track(tracker)
    for k in range(6, 9):
        tracker.process(batch(k, float(k), np.empty((0, 2))))
    assert len(tracker) == 0
    # another target, far from where the lost one would be: a fresh id
    for k in range(9, 15):
        result = tracker.process(batch(k, float(k), [[5000.0, 5000.0]]))
    assert tracker.confirmed().ids[0] > first
    assert result.updated.tolist() == tracker.confirmed().ids.tolist()


def test_late_batch_is_fused_out_of_sequence_without_a_duplicate():
    tracker = Tracker()
    track_id = confirmed_track(tracker, scans=8)  # state at t = 7
    before = tracker.confirmed().P[0].copy()
    # a satellite snapshot taken at t = 4.5, delivered now
    late = DetectionBatch.build("sat-1", "satellite", 0, 4.5, [[45.0, 0.0]], np.eye(2) * 25.0)
    result = tracker.process(late)
    assert result.n_late == 1
    assert result.updated.tolist() == [track_id] and result.initiated.size == 0
    after = tracker.confirmed()
    assert after.t[0] == 7.0  # the state stays at its own time
    assert np.trace(after.P[0][:2, :2]) < np.trace(before[:2, :2])
    assert tracker.stats["oosm_updates"] == 1


def test_checkpoint_round_trip_gives_identical_results():
    a = Tracker()
    confirmed_track(a)
    b = Tracker()
    b.load_state_dict(a.state_dict())
    for k in range(6, 10):
        ra = a.process(batch(k, float(k), [[10.0 * k, 3.0], [900.0, 900.0]]))
        rb = b.process(batch(k, float(k), [[10.0 * k, 3.0], [900.0, 900.0]]))
        assert ra.updated.tolist() == rb.updated.tolist()
        assert ra.initiated.tolist() == rb.initiated.tolist()
    np.testing.assert_array_equal(a.snapshot(False).x, b.snapshot(False).x)


def test_class_label_follows_the_evidence():
    tracker = Tracker()
    for k in range(6):
        tracker.process(
            DetectionBatch.build(
                "uav-1",
                "drone",
                k,
                float(k),
                [[5.0 * k, 0.0]],
                np.eye(2) * 100.0,
                classes=[2],
                conf=[0.8],
            )
        )
    snap = tracker.confirmed()
    assert snap.cls.tolist() == [2] and snap.conf[0] == pytest.approx(1.0)


def test_config_from_toml_names_the_bad_field(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[tracker]\naccel_std = 0.5\nconfirm_m = 2\nconfirm_n = 3\n")
    config = TrackerConfig.from_toml(good)
    assert config.accel_std == 0.5 and config.confirm_n == 3
    for text, field in [
        ("[tracker]\naccel_sdt = 1.0\n", "accel_sdt"),
        ("[tracker]\nconfirm_m = 'three'\n", "confirm_m"),
        ("[tracker]\nconfirm_m = 6\nconfirm_n = 5\n", "confirm_m"),
        ("[tracker]\nmax_coast_time = -1\n", "max_coast_time"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=field):
            TrackerConfig.from_toml(bad)


def test_a_burst_of_misses_from_many_sensors_does_not_delete_a_track():
    tracker = Tracker()
    track_id = confirmed_track(tracker)  # last hit at t = 5
    # five sensors look within 0.5 s and all miss (e.g. ground sensors that rarely hear people)
    for k in range(5):
        result = tracker.process(
            DetectionBatch.build(
                f"ugs-{k}", "ugs", 0, 5.1 + 0.1 * k, np.empty((0, 2)), np.empty((0, 2, 2))
            )
        )
        assert result.deleted.size == 0
    assert tracker.confirmed().ids.tolist() == [track_id]
    # each ground-sensor miss costs little (Pd 0.3); radar misses (Pd 0.85) soon delete it
    deleted = [tracker.process(batch(6 + k, 6.0 + k, np.empty((0, 2)))).deleted for k in range(3)]
    assert np.concatenate(deleted).tolist() == [track_id]


@pytest.mark.parametrize("own_return_seen", [True, False])
def test_a_detection_just_beyond_a_tracks_gate_is_a_new_target_only_beside_its_own_return(
    own_return_seen,
):
    tracker = Tracker()
    track_id = confirmed_track(tracker)
    ahead = tracker.confirmed(at=6.0)
    S = ahead.P[0][:2, :2] + np.eye(2) * 100.0
    north = np.array([0.0, 1.0])
    # d^2 = 16: outside the 0.99 gate (9.2), inside the initiation exclusion gate (23.0)
    beside = ahead.x[0, :2] + north * 4.0 / np.sqrt(north @ np.linalg.solve(S, north))
    z = [ahead.x[0, :2], beside] if own_return_seen else [beside]
    result = tracker.process(batch(6, 6.0, z))
    if own_return_seen:
        # the target was seen where predicted: the other detection is someone else
        assert result.updated.tolist() == [track_id] and result.initiated.size == 1
    else:
        # the target was not seen: the detection beside it is its return, not a newcomer
        assert result.updated.size == 0 and result.initiated.size == 0
