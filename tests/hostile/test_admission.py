"""Per-sensor admission: what one source sends never changes how another is treated."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.messages import WireError
from fusion.service import Pipeline, ServiceConfig
from fusion.service.admission import JUMP_CONFIRMATIONS, SensorAdmission
from fusion.service.budgets import Budgets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batch(sensor: str, seq: int, t: float, z=(0.0, 0.0)) -> DetectionBatch:
    return DetectionBatch.build(sensor, "radar", seq, t, [list(z)], np.eye(2) * 100.0)


def verdict(admission: SensorAdmission, b: DetectionBatch, user_id: str | None = None) -> str:
    try:
        admission.admit(b, user_id)
    except WireError as exc:
        return exc.reason
    return "ok"


def admission(clock: Clock, **kwargs) -> SensorAdmission:
    kwargs.setdefault("max_future", 10.0)
    kwargs.setdefault("max_lateness", 300.0)
    return SensorAdmission(clock=clock, **kwargs)


def test_a_sensor_jumping_ahead_is_quarantined_and_blinds_nobody():
    clock = Clock()
    gate = admission(clock)
    for k in range(20):
        clock.now = float(k)
        assert [verdict(gate, batch(s, k, float(k))) for s in ("r1", "r2", "r3")] == ["ok"] * 3
    # r1's clock jumps 3,500 s ahead and stays there, consistently, while the others
    # keep talking: they contradict it, so it stays one refused voter.
    for k in range(20, 40):
        clock.now = float(k)
        assert verdict(gate, batch("r1", k, 3500.0 + k)) == "future"
        assert verdict(gate, batch("r2", k, float(k))) == "ok"
        assert verdict(gate, batch("r3", k, float(k))) == "ok"
    assert gate.clock_jumps == {"r1": 20}
    assert gate.reference_time() == pytest.approx(39.0)
    # Consistent again: r1 is back.
    assert verdict(gate, batch("r1", 40, 39.5)) == "ok"


def test_a_lone_sensor_or_all_sensors_may_jump_together():
    clock = Clock()
    lone = admission(clock)
    for k in range(3):
        assert verdict(lone, batch("x", k, float(k))) == "ok"
    after = [verdict(lone, batch("x", 3 + k, 1000.0 + k)) for k in range(JUMP_CONFIRMATIONS + 1)]
    assert after == ["future"] * (JUMP_CONFIRMATIONS - 1) + ["ok", "ok"]

    pair = admission(clock)
    for k in range(3):
        assert verdict(pair, batch("p", k, float(k))) == verdict(pair, batch("q", k, float(k)))
    both = [
        (verdict(pair, batch("p", 3 + k, 500.0 + k)), verdict(pair, batch("q", 3 + k, 500.0 + k)))
        for k in range(JUMP_CONFIRMATIONS + 2)
    ]
    assert both[-1] == ("ok", "ok") and ("future", "future") in both


def test_a_silent_sensor_does_not_hold_the_others_back():
    clock = Clock()
    gate = admission(clock)
    assert verdict(gate, batch("slow", 0, 0.0)) == "ok"
    for k in range(1, 25):  # 'slow' is silent for 24 s; its vote moves on at real time
        clock.now = float(k)
        assert verdict(gate, batch("fast", k, float(k))) == "ok"


def test_a_forged_huge_sequence_number_costs_one_resync_not_the_sensor():
    clock = Clock()
    gate = admission(clock)
    for k in range(5):
        clock.now = float(k)
        assert verdict(gate, batch("radar-1", k, float(k))) == "ok"
    clock.now = 5.0
    assert verdict(gate, batch("radar-1", 2**63 - 1, 5.0)) == "ok"
    for k in range(6, 20):
        clock.now = float(k)
        assert verdict(gate, batch("radar-1", k, float(k))) == "ok"
    assert gate.resyncs == {"radar-1": 2}  # onto the forged number, and back
    assert gate.gaps == {}  # a jump beyond max_gap is not counted as lost messages
    # A replayed old frame is still a duplicate: its time is not newer.
    assert verdict(gate, batch("radar-1", 10, 10.0)) == "duplicate"


def test_an_id_flood_cannot_refuse_a_configured_or_recently_heard_sensor():
    clock = Clock()
    gate = admission(clock, max_sensors=64, sensor_idle_expiry=60.0)
    assert verdict(gate, batch("radar-1", 0, 0.0)) == "ok"
    flood = [verdict(gate, batch(f"fake-{i}", 0, 0.0)) for i in range(10_000)]
    assert flood.count("ok") == 63 and flood.count("too_many_sensors") == 10_000 - 63
    assert len(gate.heard) == 64  # state stays bounded
    clock.now = 1.0
    assert verdict(gate, batch("radar-1", 1, 1.0)) == "ok"  # heard recently: kept
    # Once the flood's ids have been idle long enough, a new sensor takes an idle slot.
    clock.now = 62.0
    assert verdict(gate, batch("radar-1", 2, 62.0)) == "ok"
    assert verdict(gate, batch("ugs-7", 0, 62.0)) == "ok"
    assert "radar-1" in gate.heard and gate.evicted == 1 and len(gate.heard) == 64


def test_configured_sensors_always_have_their_place():
    clock = Clock()
    registered = [f"radar-{i}" for i in range(3)]
    gate = admission(clock, registered=registered, max_sensors=0)
    assert [verdict(gate, batch(s, 0, 0.0)) for s in registered] == ["ok"] * 3
    assert verdict(gate, batch("fake", 0, 0.0)) == "unknown_sensor"


def test_one_key_may_create_only_so_many_ids():
    clock = Clock()
    gate = admission(clock, max_sensors_per_key=5)
    mine = [verdict(gate, batch(f"ugs-{i}", 0, 0.0), user_id="KEY-A") for i in range(8)]
    assert mine == ["ok"] * 5 + ["too_many_sensors_for_key"] * 3
    assert verdict(gate, batch("ugs-100", 0, 0.0), user_id="KEY-B") == "ok"


def test_one_key_with_many_ids_is_one_voter():
    clock = Clock()
    gate = admission(clock)
    for k in range(5):
        clock.now = float(k)
        for s in ("r1", "r2"):
            assert verdict(gate, batch(s, k, float(k)), user_id=s.upper()) == "ok"
    # Ten ids of one pattern key vote far behind: one vote, so the others go on.
    for i in range(10):
        assert verdict(gate, batch(f"ugs-{i}", 0, -200.0), user_id="UGS-KEY") == "ok"
    clock.now = 5.0
    assert verdict(gate, batch("r1", 5, 5.0), user_id="R1") == "ok"
    assert gate.reference_time() >= 4.0


def test_wall_reference_judges_every_sensor_by_the_service_clock():
    clock = Clock()
    gate = admission(clock, time_reference="wall", wall=lambda: 1.7e9)
    assert verdict(gate, batch("r1", 0, 1.7e9 - 1.0)) == "ok"
    assert verdict(gate, batch("r1", 1, 1.7e9 + 3500.0)) == "future"
    assert verdict(gate, batch("r2", 0, 1.7e9 - 1000.0)) == "too_old"


def test_state_round_trips_and_old_checkpoints_load():
    clock = Clock()
    gate = admission(clock)
    for k in range(3):
        gate.admit(batch("r1", k * 2, float(k)))
    again = admission(clock)
    again.load_state_dict(gate.state_dict())
    assert again.last_seq == gate.last_seq and again.gaps == gate.gaps
    assert verdict(again, batch("r1", 4, 2.0)) == "duplicate"
    old = admission(clock)
    old.load_state_dict({"last_seq": {"r1": 4}, "gaps": {"r1": 2}})
    assert old.last_seq == {"r1": 4} and old.gaps == {"r1": 2}


def test_pipeline_keeps_tracking_while_a_sensor_lies_about_time(engine):
    """Through the whole pipeline: the tracker's clock is not moved by a liar."""
    clock = Clock()
    config = ServiceConfig(reorder_window=0.0)
    pipe = Pipeline(Tracker(), engine, config, clock=clock)
    rng = np.random.default_rng(7)
    for k in range(60):
        clock.now = float(k)
        for sensor in ("radar-1", "radar-2"):
            z = (0.0, -1500.0 + 30.0 * k) + rng.normal(scale=10.0, size=2)
            assert pipe.receive([batch(sensor, k, float(k), z).topic,
                                 encode_batch(batch(sensor, k, float(k), z))])
        liar = batch("radar-3", k, float(k) + 3500.0)
        pipe.receive([liar.topic, encode_batch(liar)])
        pipe.release()
    status = pipe.status()
    assert status["rejected"] == {"future": 60}
    assert status["batches"] == 120 and math.isclose(pipe.tracker.latest_time, 59.0)
    assert status["alerts"].get("incursion.open") == 1


def many(sensor: str, seq: int, t: float, n: int, kind: str = "radar") -> DetectionBatch:
    z = np.zeros((n, 2))
    return DetectionBatch.build(sensor, kind, seq, t, z, np.broadcast_to(np.eye(2), (n, 2, 2)))


def test_batches_beyond_the_budget_are_refused_and_counted_without_a_gap():
    clock = Clock()
    gate = admission(clock, budgets=Budgets({"radar": (1000.0, 2000.0)}))
    assert verdict(gate, many("big", 0, 0.0, 200_000)) == "too_many_detections"
    assert "big" not in gate.heard  # a refused first batch leaves no state
    # 1,000-detection batches every 0.1 s of the sensor's time: 10,000 a second against
    # a budget of 2,000: the burst (one batch) and the refill pass, the rest is dropped.
    verdicts = [verdict(gate, many("busy", k, 0.1 * k, 1000)) for k in range(50)]
    assert verdicts[0] == "ok" and verdicts.count("over_budget") >= 35
    assert gate.budgets.drops["busy"] == verdicts.count("over_budget")
    assert gate.gaps == {}  # dropped on purpose, not lost in transport
    # Another sensor of the same kind is not charged for it.
    assert verdict(gate, many("quiet", 0, 4.9, 1000)) == "ok"


def test_absurd_covariances_are_refused_with_a_reason():
    clock = Clock()
    gate = admission(clock, budgets=Budgets(max_variance=1e8))
    huge = DetectionBatch.build("r1", "radar", 0, 0.0, [[0.0, 0.0]], np.eye(2) * 1e155)
    assert verdict(gate, huge) == "covariance_too_large"
    tilted = np.array([[[6e7, 5.9e7], [5.9e7, 6e7]]])  # each entry fine, largest eigenvalue not
    assert verdict(gate, DetectionBatch.build("r1", "radar", 1, 0.0, [[0.0, 0.0]], tilted)) == (
        "covariance_too_large"
    )
    assert verdict(gate, DetectionBatch.build("r1", "radar", 2, 0.0, [[0.0, 0.0]],
                                              np.eye(2) * 400.0)) == "ok"


def test_an_id_flood_draws_only_on_the_probation_allowance():
    clock = Clock()
    gate = admission(clock, budgets=Budgets(probation_rate=10.0))
    for k in range(6):  # past probation before the flood
        clock.now = float(k)
        assert verdict(gate, batch("radar-1", k, float(k))) == "ok"
    flood = [verdict(gate, batch(f"fake-{i}", 0, 5.0)) for i in range(500)]
    # 5 s of burst, less the token radar-1's own first batch took
    assert flood.count("ok") == 49 and flood.count("probation") == 451
    assert verdict(gate, batch("radar-1", 6, 6.0)) == "ok"  # not on probation: unaffected
    clock.now = 7.0  # the allowance refills as the reference time moves on
    assert verdict(gate, batch("newcomer", 0, 7.0)) == "ok"


def test_tentative_tracks_are_capped_per_batch_and_in_total():
    from fusion import TrackerConfig

    tracker = Tracker(TrackerConfig(max_new_per_batch=100, max_tentative=250))
    rng = np.random.default_rng(3)
    for k in range(4):  # 1,000 scattered detections a batch, each far from the others
        z = rng.uniform(-1e6, 1e6, size=(1000, 2))
        tracker.process(DetectionBatch.build("radar-1", "radar", k, float(k), z,
                                             np.broadcast_to(np.eye(2) * 100.0, (1000, 2, 2))))
    assert len(tracker) <= 250
    assert tracker.stats["initiations_refused"] >= 4 * 1000 - 250


def test_status_stays_small_however_many_ids_a_flood_invents():
    from fusion.messages import pack_map, unpack_map

    clock = Clock()
    gate = admission(clock, budgets=Budgets(probation_rate=1e6), max_sensors=5000)
    for i in range(3000):  # each id gets a gap, so every per-sensor map would list it
        gate.admit(batch(f"fake-{i}", 0, 0.0))
        gate.admit(batch(f"fake-{i}", 2 + i % 7, 0.5))
    status = gate.status()
    assert len(status["gaps"]) <= 200 and status["gaps"]["(others)"] > 0
    assert unpack_map(pack_map({"v": 1, **status}))["sensors_seen"] == 3000


def _track_ids_through_a_newcomer_flood(zones, configured: bool) -> tuple[set, set]:
    """Confirmed ids of one target, seen by a radar every 4 s, before and after 40 s of
    a flood of one-batch ids that claim to see everything (no coverage) and detect
    nothing near it."""
    from fusion.alerting.engine import AlertEngine

    fakes = [f"fake-{k}-{i}" for k in range(20, 60) for i in range(6)]
    config = ServiceConfig(reorder_window=0.0,
                           sensors=("radar-1", *fakes) if configured else ())
    clock = Clock()
    pipe = Pipeline(Tracker(), AlertEngine(zones), config, clock=clock)
    rng = np.random.default_rng(3)
    before: set = set()
    for k in range(60):
        clock.now = float(k)
        if k % 4 == 0:
            z = (2000.0 + 5.0 * k, -2000.0) + rng.normal(scale=10.0, size=2)
            b = batch("radar-1", k // 4, float(k), z)
            assert pipe.receive([b.topic, encode_batch(b)])
        if k >= 20:
            for i in range(6):
                fake = batch(f"fake-{k}-{i}", 0, float(k), (40_000.0, 40_000.0))
                assert pipe.receive([fake.topic, encode_batch(fake)])
        pipe.release()
        if k == 19:
            before = set(pipe.tracker.confirmed().ids.tolist())
    assert pipe.status()["rejected"] == {}
    return before, set(pipe.tracker.confirmed().ids.tolist())


def test_newcomers_claiming_to_see_everything_cannot_wear_down_tracks(strip_zones):
    # One batch each from invented ids, no coverage polygon: "we looked everywhere and
    # saw nothing". From newcomers that covers only their own surroundings, so the
    # radar's track keeps its id; from configured sensors the same misses count (the
    # control: the mechanism is what keeps the track, not the numbers).
    before, after = _track_ids_through_a_newcomer_flood(strip_zones, configured=False)
    assert len(before) == 1 and before <= after
    before, after = _track_ids_through_a_newcomer_flood(strip_zones, configured=True)
    assert len(before) == 1 and not before <= after


def test_status_keeps_the_established_sensors_latency_apart_from_a_floods(engine):
    # The flood's one-batch ids wait 0.5 s each (their batches sit behind the rest);
    # the established radar's wait 1 ms. Status says both, so a flood's waiting cannot
    # hide, or pass for, what the sensors everyone relies on wait for.
    clock = Clock()
    pipe = Pipeline(Tracker(), engine, ServiceConfig(reorder_window=0.0), clock=clock)
    for k in range(30):
        clock.now = float(k)
        b = batch("radar-1", k, float(k), (0.0, -1500.0 + 30.0 * k))
        assert pipe.receive([b.topic, encode_batch(b)], t_recv=clock.now - 0.001)
        if k >= 15:
            fake = batch(f"fake-{k}", 0, float(k), (20_000.0, 20_000.0))
            assert pipe.receive([fake.topic, encode_batch(fake)], t_recv=clock.now - 0.5)
        pipe.release()
    status = pipe.status()
    assert status["batches"] == 45
    assert status["latency_ms"]["max"] == pytest.approx(500.0)
    assert status["latency_ms_established"]["max"] == pytest.approx(1.0)
    assert status["latency_ms_established"]["p50"] == pytest.approx(1.0)


def test_ages_are_measured_only_for_times_in_utc(engine):
    # A simulation's scenario seconds (from 0) are no UTC times: an "age" of 56 years
    # would hide the real one. Epoch times get theirs from the UTC clock.
    def fed(t0: float) -> dict:
        clock = Clock()
        pipe = Pipeline(Tracker(), engine, ServiceConfig(reorder_window=0.0), clock=clock,
                        wall=lambda: t0 + 30.25)
        for k in range(30):
            clock.now = float(k)
            b = batch("radar-1", k, t0 + k, (0.0, -1500.0 + 30.0 * k))
            assert pipe.receive([b.topic, encode_batch(b)])
            pipe.release()
        return pipe.status()

    assert fed(0.0)["age_ms"] == {"p50": 0.0, "p99": 0.0, "max": 0.0}
    assert fed(1.8e9)["age_ms"]["max"] == pytest.approx(30_250.0)
