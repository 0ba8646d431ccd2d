"""Track continuity through coverage gaps and short losses: the same target keeps its id."""

from __future__ import annotations

import numpy as np

from fusion import DetectionBatch, Tracker
from fusion.tracking.continuity import LostTracks
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


def test_a_target_lost_for_a_few_scans_gets_its_old_id_back():
    tracker = Tracker()
    for k in range(10):
        tracker.process(batch(k, float(k), [[10.0 * k, 0.0]]))
    (first,) = tracker.confirmed().ids.tolist()
    for k in range(10, 14):  # obscured: four misses in coverage delete the track
        tracker.process(batch(k, float(k), np.empty((0, 2))))
    assert len(tracker.confirmed()) == 0
    for k in range(14, 18):
        result = tracker.process(batch(k, float(k), [[10.0 * k, 0.0]]))
    assert tracker.confirmed().ids.tolist() == [first]
    assert tracker.stats["reacquired"] == 1
    assert result.updated.tolist() == [first]


def test_a_new_target_elsewhere_gets_a_new_id():
    tracker = Tracker()
    for k in range(10):
        tracker.process(batch(k, float(k), [[10.0 * k, 0.0]]))
    (first,) = tracker.confirmed().ids.tolist()
    for k in range(10, 14):
        tracker.process(batch(k, float(k), np.empty((0, 2))))
    for k in range(14, 18):  # heading the other way, 3 km off
        tracker.process(batch(k, float(k), [[-10.0 * k, 3000.0]]))
    assert tracker.confirmed().ids.tolist() != [first]
    assert tracker.confirmed().ids[0] > first


def test_lost_tracks_expire_and_survive_a_checkpoint():
    lost = LostTracks(capacity=3)
    P = np.broadcast_to(np.eye(4) * 10.0, (4, 4, 4)).copy()
    lost.add(np.arange(1, 5), np.zeros((4, 4)), P, np.array([0.0, 1.0, 2.0, 3.0]))
    assert lost.id.tolist() == [2, 3, 4]  # capacity: the oldest loss went
    lost.expire(now=62.0, window=60.0)
    assert lost.id.tolist() == [3, 4]
    state = lost.state_dict()
    # crash recovery pads every array of the tracker state with zero rows
    state = {k: np.concatenate([v, np.zeros((1, *v.shape[1:]), v.dtype)]) for k, v in state.items()}
    again = LostTracks()
    again.load_state_dict(state)
    assert again.id.tolist() == [3, 4]


def test_table_rows_stay_in_id_order_after_an_id_is_given_back():
    table = TrackTable(4)
    x = np.arange(20.0).reshape(4, 5)
    table.add(x, np.broadcast_to(np.eye(4)[..., None], (4, 4, 5)).copy(), 0.0)
    table.id[3] = 0  # the row took back an older id
    table.sort_by_id()
    assert table.id.tolist() == [0, 1, 2, 3, 5]
    np.testing.assert_array_equal(table.x[:, 0], x[:, 3])  # the whole row moved
