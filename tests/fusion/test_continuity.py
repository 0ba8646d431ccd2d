"""Track continuity through coverage gaps and short losses: the same target keeps its id."""

from __future__ import annotations

import numpy as np

from fusion import DetectionBatch, Tracker
from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import load_rules
from fusion.alerting.zones import Zone
from fusion.geo import LocalFrame
from fusion.tracking import existence, kalman
from fusion.tracking.config import TrackerConfig
from fusion.tracking.continuity import LostTracks, supersede
from fusion.tracking.track_table import TrackTable

# A radar whose coverage has a shadow: everything but the band 1000 < east < 1600.
WEST = np.array([[-5000.0, -5000.0], [1000.0, -5000.0], [1000.0, 5000.0], [-5000.0, 5000.0]])
EAST = np.array([[1600.0, -5000.0], [8000.0, -5000.0], [8000.0, 5000.0], [1600.0, 5000.0]])


def batch(seq, t, z, sensor="radar-1", coverage=None, pd=0.9):
    z = np.asarray(z, dtype=float).reshape(-1, 2)
    return DetectionBatch.build(
        sensor, "radar", seq, t, z, np.eye(2) * 100.0, coverage=coverage, pd=pd,
        clutter_density=1e-8,
    )


def test_a_target_crossing_a_radar_shadow_comes_back_under_its_id():
    tracker = Tracker()
    velocity = np.array([20.0, 0.0])
    seq = 0
    ids = set()
    for k in range(120):  # 0 m -> 2400 m east at 20 m/s: 30 s in the shadow
        t = float(k)
        position = velocity * t
        for sensor, cover in (("radar-w", WEST), ("radar-e", EAST)):
            inside = cover[0, 0] < position[0] < cover[1, 0]
            z = position[None] if inside else np.empty((0, 2))
            tracker.process(batch(seq, t, z, sensor, cover))
            seq += 1
        ids |= set(tracker.confirmed().ids.tolist())
    assert len(ids) == 1


def track_then_lose(looks: int = 4) -> tuple[Tracker, int]:
    """A target tracked for 10 scans eastwards at 10 m/s, then ``looks`` scans that see
    nothing (four misses in coverage delete its track); the tracker and the track's id."""
    tracker = Tracker()
    for k in range(10):
        tracker.process(batch(k, float(k), [[10.0 * k, 0.0]]))
    (first,) = tracker.confirmed().ids.tolist()
    for k in range(10, 10 + looks):
        tracker.process(batch(k, float(k), np.empty((0, 2))))
    return tracker, first


def test_a_target_lost_for_a_few_scans_gets_its_old_id_back():
    tracker, first = track_then_lose()  # obscured: four misses in coverage
    assert len(tracker.confirmed()) == 0
    # The first detection where the lost track predicts brings it back, confirmed and
    # under its old id: no new tentative track waiting for a second detection.
    result = tracker.process(batch(14, 14.0, [[140.0, 0.0]]))
    assert result.confirmed.tolist() == [first] and result.initiated.size == 0
    assert tracker.confirmed().ids.tolist() == [first]
    assert tracker.stats["revived"] == 1
    for k in range(15, 18):
        result = tracker.process(batch(k, float(k), [[10.0 * k, 0.0]]))
    assert tracker.confirmed().ids.tolist() == [first]
    assert result.updated.tolist() == [first]
    # It carries on with the lost track's velocity, not a standing start, and it is not a
    # young track (supersede and the duplicate sweep treat young tracks differently).
    row = int(np.flatnonzero(tracker.tracks.id[: len(tracker)] == first)[0])
    assert abs(tracker.tracks.x[2, row] - 10.0) < 1.0
    assert tracker.tracks.t_born[row] == 0.0


def test_hit_counting_does_not_revive():
    tracker = Tracker(TrackerConfig(lifecycle="m_of_n"))
    for k in range(10):
        tracker.process(batch(k, float(k), [[10.0 * k, 0.0]]))
    for k in range(10, 16):  # max_misses = 5 in coverage, and 2 s silent
        tracker.process(batch(k, float(k), np.empty((0, 2))))
    assert len(tracker.confirmed()) == 0 and len(tracker.lost) == 1
    result = tracker.process(batch(16, 16.0, [[160.0, 0.0]]))
    assert result.confirmed.size == 0 and result.initiated.size == 1


def test_a_lost_track_not_revived_when_its_detection_is_far_from_where_it_predicts():
    tracker, _ = track_then_lose()
    result = tracker.process(batch(14, 14.0, [[140.0, 400.0]]))  # 400 m off its course
    assert result.confirmed.size == 0 and result.initiated.size == 1
    assert tracker.stats["revived"] == 0


def test_a_lost_track_the_sensors_keep_not_seeing_is_not_revived():
    """Every look that finds nothing where the lost track predicts lowers its score, as it
    would a live track's: after many, a detection there starts a new track instead."""
    tracker, first = track_then_lose(looks=14)  # ten more looks after the deletion
    result = tracker.process(batch(24, 24.0, [[240.0, 0.0]]))
    assert first not in result.confirmed.tolist()
    assert tracker.stats["revived"] == 0
    # A look whose footprint does not hold the lost track costs it nothing.
    hidden, first = track_then_lose()
    at_loss = hidden.lost.score.tolist()
    assert len(at_loss) == 1
    far = np.array([[5e3, 5e3], [6e3, 5e3], [6e3, 6e3], [5e3, 6e3]])
    for k in range(14, 24):
        hidden.process(batch(k, float(k), np.empty((0, 2)), coverage=far))
    assert hidden.lost.score.tolist() == at_loss
    result = hidden.process(batch(24, 24.0, [[240.0, 0.0]]))
    assert result.confirmed.tolist() == [first]


def test_a_new_target_elsewhere_gets_a_new_id():
    tracker, first = track_then_lose()
    for k in range(14, 18):  # heading the other way, 3 km off
        tracker.process(batch(k, float(k), [[-10.0 * k, 3000.0]]))
    assert tracker.confirmed().ids.tolist() != [first]
    assert tracker.confirmed().ids[0] > first


def test_lost_tracks_expire_and_survive_a_checkpoint():
    lost = LostTracks(capacity=3)
    P = np.broadcast_to(np.eye(4) * 10.0, (4, 4, 4)).copy()
    lost.add(np.arange(1, 5), np.zeros((4, 4)), P, np.array([0.0, 1.0, 2.0, 3.0]),
             np.array([1.0, 2.0, 3.0, 4.0]), t_hit=np.array([-1.0, 0.0, 1.5, 2.5]))
    assert lost.id.tolist() == [2, 3, 4]  # capacity: the oldest loss went
    assert lost.t_hit.tolist() == [0.0, 1.5, 2.5]
    lost.expire(now=62.0, window=60.0)
    assert lost.id.tolist() == [3, 4]
    state = lost.state_dict()
    # crash recovery pads every array of the tracker state with zero rows
    state = {k: np.concatenate([v, np.zeros((1, *v.shape[1:]), v.dtype)]) for k, v in state.items()}
    again = LostTracks()
    again.load_state_dict(state)
    assert again.id.tolist() == [3, 4]
    assert again.score.tolist() == [3.0, 4.0]
    assert again.born.tolist() == [2.0, 3.0]  # added without birth times: their state times
    assert again.t_hit.tolist() == [1.5, 2.5]
    # A checkpoint from before lost tracks kept a score: they can be claimed, never revived.
    del state["lost_score"]
    older = LostTracks()
    older.load_state_dict(state)
    assert older.id.tolist() == [3, 4] and np.all(np.isneginf(older.score))
    del state["lost_born"], state["lost_t_hit"]
    older.load_state_dict(state)
    assert older.born.tolist() == [2.0, 3.0]
    assert older.t_hit.tolist() == [2.0, 3.0]  # no last-detection times: the state times


def test_table_rows_stay_in_id_order_after_an_id_is_given_back():
    table = TrackTable(4)
    x = np.arange(20.0).reshape(4, 5)
    table.add(x, np.broadcast_to(np.eye(4)[..., None], (4, 4, 5)).copy(), 0.0)
    table.id[3] = 0  # the row took back an older id
    table.sort_by_id()
    assert table.id.tolist() == [0, 1, 2, 3, 5]
    np.testing.assert_array_equal(table.x[:, 0], x[:, 3])  # the whole row moved


# -- a manoeuvre: the new track confirms while the old one still coasts ---------------


def reversal(t):
    """East at 40 m/s from -400 m, an instant reversal at t = 10 s, along north = 0."""
    return np.array([-400.0 + 40.0 * min(t, 10.0) - 40.0 * max(t - 10.0, 0.0), 0.0])


def run_reversal(config=None, steps=30):
    tracker = Tracker() if config is None else Tracker(config)
    results = [tracker.process(batch(k, float(k), [reversal(k)])) for k in range(steps)]
    return tracker, results


def test_a_target_that_reverses_keeps_its_id_while_its_old_track_coasts():
    tracker, results = run_reversal()
    first = results[1].confirmed.tolist()
    assert first == [1]
    assert tracker.confirmed().ids.tolist() == first
    assert tracker.stats["superseded"] == 1
    assert len(tracker.tracks) == 1  # the coasting row went, not the one on the target
    np.testing.assert_allclose(tracker.confirmed().x[0, :2], reversal(29), atol=30.0)
    assert tracker.confirmed().x[0, 2] < -30.0  # the new course, westwards
    # the old row was neither reported deleted nor remembered as lost
    assert all(r.deleted.size == 0 for r in results)
    assert len(tracker.lost) == 0


def test_without_supersede_the_reversal_changes_the_id():
    tracker, results = run_reversal(TrackerConfig(supersede_max_gap=0.0))
    assert tracker.confirmed().ids.tolist() == [2]
    assert [r.deleted.tolist() for r in results if r.deleted.size] == [[1]]


def test_a_target_that_dies_and_one_born_2_km_away_do_not_swap_ids():
    tracker = Tracker()
    deleted = []
    for k in range(25):
        z = [[40.0 * k, 0.0]] if k <= 10 else []  # the first target is gone after 10 s
        if k >= 11:  # the second appears 2 km north, while the first's track coasts
            z.append([400.0 - 40.0 * (k - 11), 2000.0])
        deleted += tracker.process(batch(k, float(k), z)).deleted.tolist()
    assert deleted == [1]
    assert tracker.confirmed().ids.tolist() == [2]
    assert tracker.stats["superseded"] == 0


def halt_unseen(config=None):
    """East at 40 m/s to a halt at the origin at t = 10 s, unseen at 11 and 12 s (its track,
    coasting on, is deleted), seen again from 13 s where it stopped."""
    tracker = Tracker() if config is None else Tracker(config)
    results = []
    for k in range(20):
        z = [[-400.0 + 40.0 * k, 0.0]] if k <= 10 else [] if k <= 12 else [[0.0, 0.0]]
        results.append(tracker.process(batch(k, float(k), z)))
    return tracker, results


def test_a_target_that_halts_takes_back_the_id_of_its_track_lost_meanwhile():
    # The old track was deleted (lost) before the new one confirmed, so supersede never
    # saw the pair, and the lost track's straight-line prediction has run on 160 m past
    # the halted target (the 4-dof claim fails): restarted at its last detection, it
    # still continues the new track.
    tracker, results = halt_unseen()
    assert [r.deleted.tolist() for r in results if r.deleted.size] == [[1]]
    confirmed = [r.confirmed.tolist() for r in results if r.confirmed.size]
    assert confirmed == [[1], [1]]  # first at t = 1 s; again when the halted one confirms
    assert tracker.confirmed().ids.tolist() == [1]
    assert tracker.stats["reacquired"] == 1 and len(tracker.lost) == 0
    np.testing.assert_allclose(tracker.confirmed().x[0, :2], [0.0, 0.0], atol=15.0)


def test_without_supersede_the_halted_target_gets_a_new_id():
    tracker, _ = halt_unseen(TrackerConfig(supersede_max_gap=0.0))
    assert tracker.confirmed().ids.tolist() == [2]
    assert tracker.stats["reacquired"] == 0 and tracker.lost.id.tolist() == [1]


def test_an_open_incursion_continues_on_the_same_id_through_the_reversal():
    strip = np.array([[-2000, -100], [2000, -100], [2000, 100], [-2000, 100]])  # 200 m wide
    zone = Zone.from_local("zone-a", strip)
    engine = AlertEngine([zone], load_rules(), LocalFrame(33.0, 35.0))
    tracker = Tracker()
    events = []
    for k in range(40):
        result = tracker.process(batch(k, float(k), [reversal(k)]))
        snap = tracker.confirmed(at=float(k))
        events += engine.step(
            float(k), snap.ids, snap.x, snap.P, snap.cls, snap.conf,
            updated_ids=result.updated, sensor_id="radar-1", deleted_ids=result.deleted,
        )
    incursions = [e for e in events if e["kind"] == "incursion"]
    assert [(e["event"], e["track_id"]) for e in incursions if e["event"] != "update"] == [
        ("open", 1)
    ]
    assert incursions[0]["t"] < 10.0  # opened before the reversal, still open after it
    assert not [e for e in events if e["kind"] == "lost_inside"]
    assert {e["track_id"] for e in events} == {1}


def test_an_old_track_updated_in_the_new_tracks_own_second_is_still_superseded():
    # Two sensors in one second: the old track took a coarse detection at t = 100 s,
    # the new track started and confirmed 45 m away on a precise one at the same time.
    eye = np.broadcast_to(np.eye(4), (1, 4, 4))
    new = (np.array([[45.0, 0.0, -5.0, 0.0]]), eye * 100.0, np.array([100.0]))
    old = (np.array([[0.0, 0.0, 20.0, 0.0]]), eye * 25.0, np.array([100.0]), np.array([100.0]))
    k, m = supersede(new, old, now=100.0, max_gap=5.0, velocity_std=15.0, accel_var=4.0)
    assert (k.tolist(), m.tolist()) == ([0], [0])
    far = (np.array([[300.0, 0.0, -5.0, 0.0]]), *new[1:])  # another target, 300 m off
    k, _ = supersede(far, old, now=100.0, max_gap=5.0, velocity_std=15.0, accel_var=4.0)
    assert k.size == 0


def test_the_supersede_prefilter_keeps_every_pair_the_exact_gate_accepts():
    # The pre-filter may only drop pairs outside supersede's gate. Random old tracks
    # (coasting for up to 4 s, some velocities fast) and young tracks placed around
    # them at distances spanning the gate edge: every pair whose exact 2-dof distance
    # (restart at the last hit, predict to now, as supersede does) is inside the gate
    # must be kept, and far pairs must go (the filter must do its job).
    from fusion.tracking import kalman
    from fusion.tracking.continuity import RESTART_MIN_SPAN, _gate_2dof, _may_gate
    from fusion.tracking.gating import gate_threshold

    rng = np.random.default_rng(11)
    cfg = TrackerConfig()
    accel_var = cfg.accel_std**2
    gamma = _gate_2dof(cfg.supersede_probability)
    assert gamma == gate_threshold(cfg.supersede_probability, dof=2)
    inside = kept_inside = dropped = 0
    for _ in range(20):
        m, now = 200, 100.0
        tracks = TrackTable()
        x_o = np.vstack([rng.uniform(-5e3, 5e3, (2, m)), rng.normal(0.0, 10.0, (2, m))])
        A = rng.normal(0.0, 1.0, (m, 4, 4)) * [3.0, 3.0, 1.0, 1.0]
        P_o = (A @ A.transpose(0, 2, 1) + np.eye(4) * [25.0, 25.0, 4.0, 4.0]).transpose(1, 2, 0)
        tracks.add(x_o, P_o, now - 1.0)
        old = np.arange(m)
        tracks.t_hit[old] = now - 1.0 - rng.uniform(0.0, 4.0, m)
        k = 30
        at = rng.integers(0, m, k)
        x_n = np.zeros((k, 4))
        x_n[:, :2] = x_o[:2, at].T + rng.normal(0.0, 1.0, (k, 2)) * rng.uniform(1.0, 300.0, (k, 1))
        P_n = np.broadcast_to(np.diag([400.0, 400.0, 100.0, 100.0]), (k, 4, 4)).copy()
        keep = _may_gate(x_n, P_n, tracks, old, now, cfg, accel_var)
        # The exact test, written out: restart at the hit, predict to now.
        t_hit, t = tracks.t_hit[old], tracks.t[old]
        xo, Po = kalman.predict(x_o.T, P_o.transpose(2, 0, 1), t_hit - t, accel_var)
        xo[:, 2:] = 0.0
        Po[:, 2:, :] = Po[:, :, 2:] = 0.0
        Po[:, 2, 2] = Po[:, 3, 3] = cfg.init_velocity_std**2
        xo, Po = kalman.predict(xo, Po, np.maximum(now - t_hit, RESTART_MIN_SPAN), accel_var)
        y = x_n[:, None, :2] - xo[None, :, :2]  # (K, M, 2)
        S = P_n[:, None, :2, :2] + Po[None, :, :2, :2]
        d2 = np.einsum("kmi,kmi->km", y, np.linalg.solve(S, y[..., None])[..., 0])
        gated = (d2 <= gamma).any(axis=0)
        inside += int(gated.sum())
        kept_inside += int((gated & keep).sum())
        dropped += int((~keep).sum())
    assert inside > 100 and kept_inside == inside
    assert dropped > 0.8 * 20 * 200 - inside


def test_revival_pre_filter_keeps_every_lost_track_the_exact_test_could_revive():
    """LostTracks._hopeful drops lost tracks by two bounds (best possible hit, gate
    reach) before the exact test; it must never drop one the exact test would revive."""
    rng = np.random.default_rng(14)
    gamma, pd, clutter, confirm_at, accel_var = 9.21, 0.9, 1e-7, 6.9, 4.0
    kept_any = dropped_any = False
    for _ in range(30):
        n, m = 40, 25
        lost = LostTracks()
        A = rng.normal(size=(n, 4, 4)) * rng.uniform(1.0, 30.0, (n, 1, 1))
        P = A @ A.transpose(0, 2, 1) + np.eye(4)
        x = np.column_stack([rng.uniform(0, 3000, (n, 2)), rng.normal(0, 10, (n, 2))])
        lost.add(np.arange(1, n + 1), x, P, rng.uniform(0.0, 5.0, n),
                 rng.uniform(-8.0, 4.0, n))
        t = 6.0
        z = rng.uniform(0, 3000, (m, 2))
        R = np.broadcast_to(np.diag(rng.uniform(25.0, 900.0, 2)), (m, 2, 2)).copy()
        # the exact test on every pair, written out
        xp, Pp = kalman.predict(lost.x, lost.P, t - lost.t, accel_var)
        y = z[None, :, :] - xp[:, None, :2]
        S = Pp[:, None, :2, :2] + R[None]
        d2 = np.einsum("lmi,lmi->lm", y, np.linalg.solve(S, y[..., None])[..., 0])
        hit = existence.hit_score(pd, clutter, d2, np.linalg.slogdet(S)[1])
        revivable = ((d2 <= gamma) & (lost.score[:, None] + hit >= confirm_at)).any(axis=1)
        hopeful = np.zeros(n, bool)
        hopeful[lost._hopeful(z, R, t, accel_var, gamma, pd, clutter, confirm_at)] = True
        assert not (revivable & ~hopeful).any()
        kept_any |= bool(revivable.any())
        dropped_any |= bool((~hopeful).any())
    assert kept_any and dropped_any  # the draws exercise both sides


def test_the_coarse_supersede_reach_keeps_every_row_the_exact_bound_keeps():
    # continuity._within_reach (one young track, whole table) goes before the exact
    # bound on a small batch: any row the exact bound keeps must be inside its reach,
    # whatever the coasts (back up to 6 s, both signs of the covariance terms), and it
    # must still drop most far rows; a non-finite covariance hands over (None).
    from fusion.tracking.continuity import _near_restart, _within_reach

    rng = np.random.default_rng(23)
    cfg = TrackerConfig()
    accel_var = cfg.accel_std**2
    kept = dropped = 0
    for _ in range(40):
        m, now = 300, 50.0
        tracks = TrackTable()
        x_o = np.vstack([rng.uniform(-4e3, 4e3, (2, m)), rng.normal(0.0, 15.0, (2, m))])
        A = rng.normal(0.0, 1.0, (m, 4, 4)) * rng.uniform(0.5, 8.0, (m, 1, 1))
        P_o = (A @ A.transpose(0, 2, 1) + np.eye(4) * [25.0, 25.0, 4.0, 4.0]).transpose(1, 2, 0)
        tracks.add(x_o, P_o, now)
        tracks.t[:] = now - rng.uniform(0.0, 2.0, m)
        tracks.t_hit[:] = tracks.t - rng.uniform(0.0, 6.0, m) * (rng.random(m) < 0.7)
        x = np.zeros((1, 4))
        x[0, :2] = x_o[:2, rng.integers(m)] + rng.normal(0.0, 150.0, 2)
        P = np.diag([400.0, 400.0, 100.0, 100.0])[None]
        exact = _near_restart(x, P, tracks.x, tracks.P, tracks.t, tracks.t_hit, now, cfg,
                              accel_var)
        reach = _within_reach(x, P, tracks, now, cfg, accel_var)
        assert not (exact & ~reach).any()
        kept += int(exact.sum())
        dropped += int((~reach).sum())
    assert kept > 40 and dropped > 0.8 * 40 * 300
    # Where the bound is tight: every row coasted 3 s with the same covariance,
    # position and velocity fully anti-correlated and P_00 = 3^2 P_22, so the coast
    # undone adds exactly 2 tr A + 2 b^2 tr C; rows fill a disc reaching past the gate.
    m, b, c = 3000, 3.0, 500.0
    a = b * b * c
    block = np.array([[a, 0, -np.sqrt(a * c), 0], [0, a, 0, -np.sqrt(a * c)],
                      [-np.sqrt(a * c), 0, c, 0], [0, -np.sqrt(a * c), 0, c]])
    tracks = TrackTable()
    radius, angle = 1000.0 * np.sqrt(rng.random(m)), rng.uniform(0, 2 * np.pi, m)
    x_o = np.vstack([radius * np.cos(angle), radius * np.sin(angle), np.zeros((2, m))])
    tracks.add(x_o, np.broadcast_to(block[..., None], (4, 4, m)), now)
    tracks.t_hit[:] = now - b
    x, P = np.zeros((1, 4)), np.diag([1.0, 1.0, 1.0, 1.0])[None]
    exact = _near_restart(x, P, tracks.x, tracks.P, tracks.t, tracks.t_hit, now, cfg, accel_var)
    reach = _within_reach(x, P, tracks, now, cfg, accel_var)
    assert 100 < exact.sum() < m - 100 and not (exact & ~reach).any()
    tracks.P[0, 0, 5] = np.nan
    assert _within_reach(x, P, tracks, now, cfg, accel_var) is None


def test_a_small_batch_supersedes_through_the_coarse_reach_as_through_the_exact_bound():
    # One young track against a large table: superseded_rows takes the coarse reach,
    # then the exact bound on the rows left; with the reach disabled (None) it runs the
    # exact bound over every row. Both must match the same old track.
    from unittest import mock

    from fusion.tracking import continuity

    cfg = TrackerConfig()
    accel_var = cfg.accel_std**2
    rng = np.random.default_rng(5)
    m = 400
    tracks = TrackTable()
    x_o = np.vstack([rng.uniform(-2e4, 2e4, (2, m)), rng.normal(0.0, 5.0, (2, m))])
    P_o = np.broadcast_to((np.eye(4) * [30.0, 30.0, 4.0, 4.0])[..., None], (4, 4, m))
    tracks.add(x_o, P_o, 10.0)
    tracks.status[:] = 1  # CONFIRMED
    tracks.t_born[:] = 0.0
    tracks.t_hit[:m] = 10.0
    # The old track 17 stopped being detected at 8.0; a young one starts near its
    # last hit, going the other way.
    tracks.t_hit[17] = 8.0
    young_x = np.array([[x_o[0, 17] + 2 * x_o[2, 17] + 30.0, x_o[1, 17] + 2 * x_o[3, 17],
                         -x_o[2, 17], -x_o[3, 17]]]).T
    tracks.add(young_x, np.diag([100.0, 100.0, 50.0, 50.0])[..., None], 9.0)
    young = tracks.n - 1
    tracks.status[young] = 1
    tracks.t[young] = tracks.t_hit[young] = 10.0
    for rows in (np.array([young]), np.array([young, 3, 4])):
        state = tracks.state_dict()
        with mock.patch.object(continuity, "_within_reach", wraps=continuity._within_reach) as spy:
            got = continuity.superseded_rows(tracks, rows, 10.0, cfg, accel_var)
        assert spy.call_count == 1  # one young track either way: the coarse reach ran
        table = TrackTable.from_state_dict(state)
        with mock.patch.object(continuity, "_within_reach", return_value=None):
            want = continuity.superseded_rows(table, rows, 10.0, cfg, accel_var)
        np.testing.assert_array_equal(got, want)
        assert 17 in got
