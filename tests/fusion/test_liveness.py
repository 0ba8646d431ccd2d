"""Sensor liveness: learned periods, silent/back events, degraded tracks (fake clock)."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.geo import LocalFrame
from fusion.service.liveness import (
    SYSTEM_ZONE,
    LivenessConfig,
    SensorLiveness,
    degraded_tracks,
)


class FakeClock:
    """Wall clock the test moves by hand: no sleeping, no timing flakiness."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SQUARE = np.array([[0.0, 0.0], [1000.0, 0.0], [1000.0, 1000.0], [0.0, 1000.0]])


def feed(live: SensorLiveness, clock: FakeClock, sensor: str, period: float, n: int,
         **kwargs) -> list[dict]:
    events = []
    for _ in range(n):
        events += live.observe(sensor, "radar", t=clock.now - 1000.0, **kwargs)
        clock.now += period
    return events


def test_learned_period_is_the_median_gap_and_ignores_one_stall():
    clock = FakeClock()
    live = SensorLiveness(LivenessConfig(learn_batches=4), clock=clock)
    feed(live, clock, "radar-1", 0.5, 5)
    assert live.expected_period("radar-1") == pytest.approx(0.5)
    clock.now += 3.0  # one stall: the median does not move
    feed(live, clock, "radar-1", 0.5, 3)
    assert live.expected_period("radar-1") == pytest.approx(0.5)


def test_period_unknown_until_learned_then_configured_wins():
    clock = FakeClock()
    cfg = LivenessConfig(learn_batches=8, expected_periods={"ugs-1": 10.0})
    live = SensorLiveness(cfg, clock=clock)
    feed(live, clock, "radar-1", 0.5, 3)
    assert live.expected_period("radar-1") is None
    assert live.silence_limit("radar-1") == cfg.max_silence
    assert live.expected_period("ugs-1") == 10.0
    assert live.silence_limit("ugs-1") == pytest.approx(50.0)


def test_killed_sensor_is_silent_within_the_configured_time_then_back():
    clock = FakeClock()
    cfg = LivenessConfig(silent_periods=5, min_silence=2.0, learn_batches=4)
    live = SensorLiveness(cfg, clock=clock)
    for _ in range(10):  # two sensors, each on its own rate
        live.observe("radar-1", "radar", coverage=SQUARE)
        live.observe("drone-1", "drone")
        clock.now += 1.0
        assert live.check() == []
    last = live.sensors["radar-1"].last_wall
    # radar-1 is killed; drone-1 keeps going.
    events: list[dict] = []
    while not events:
        clock.now += 0.25
        live.observe("drone-1", "drone")
        events = live.check()
        assert clock.now - last <= 5 * 1.0 + 0.25, "not reported within 5 periods"
    assert clock.now - last > 5.0  # and not before
    (ev,) = events
    assert ev["kind"] == "sensor_silent" and ev["event"] == "open"
    assert ev["zone"] == SYSTEM_ZONE and ev["sensor"] == "radar-1"
    assert ev["evidence"] == ["radar-1"]
    assert ev["expected_period_s"] == pytest.approx(1.0)
    assert ev["periods_missed"] == 5
    assert ev["position"]["east"] == pytest.approx(500.0)
    assert live.silent() == {"radar-1"}
    assert [a["alert_id"] for a in live.open_alerts()] == [ev["alert_id"]]
    assert live.check() == []  # said once, not every tick
    clock.now += 30.0
    (back,) = live.observe("radar-1", "radar")
    assert back["kind"] == "sensor_back" and back["event"] == "close"
    assert back["alert_id"] == ev["alert_id"] and back["silent_for"] == pytest.approx(30.0)
    assert live.silent() == set() and live.open_alerts() == []
    # The silence did not teach the period: one 30 s gap is not a new rate.
    assert live.expected_period("radar-1") == pytest.approx(1.0)


def test_known_sensor_that_sends_once_and_dies_is_reported_after_max_silence():
    clock = FakeClock()
    live = SensorLiveness(LivenessConfig(max_silence=20.0), clock=clock, known=["ugs-7"])
    live.observe("ugs-7", "ugs")
    clock.now += 19.9
    assert live.check() == []
    clock.now += 0.2
    assert [e["sensor"] for e in live.check()] == ["ugs-7"]


def test_invented_ids_that_send_once_raise_no_silence_alerts():
    # Insecure mode: anyone may invent ids. 500 ids that each send one batch and stop
    # are not 500 alerts; an unknown id is watched once its period is learned.
    clock = FakeClock()
    cfg = LivenessConfig(max_silence=20.0, learn_batches=4)
    live = SensorLiveness(cfg, clock=clock, known=["radar-1"])
    for k in range(500):
        live.observe(f"fake-{k}", "ugs")
    live.observe("radar-1", "radar")
    feed(live, clock, "ugs-steady", 1.0, 5)  # unknown, but sends steadily: watched
    clock.now += 60.0
    assert sorted(e["sensor"] for e in live.check()) == ["radar-1", "ugs-steady"]


def test_min_silence_stops_a_fast_sensor_flapping():
    clock = FakeClock()
    live = SensorLiveness(LivenessConfig(min_silence=2.0, learn_batches=4), clock=clock)
    feed(live, clock, "radar-1", 0.05, 10)
    assert live.silence_limit("radar-1") == 2.0
    clock.now += 1.0
    assert live.check() == []


def test_event_has_lonlat_when_given_a_frame():
    clock = FakeClock()
    frame = LocalFrame(33.0, 35.0)
    cfg = LivenessConfig(min_silence=0.5, max_silence=1.0)
    live = SensorLiveness(cfg, clock=clock, to_lonlat=frame.to_lonlat, known=["radar-1"])
    live.observe("radar-1", "radar", coverage=SQUARE)
    clock.now += 2.0
    (ev,) = live.check()
    lon, lat = frame.to_lonlat(np.array([500.0, 500.0]))
    assert ev["position"]["lon"] == pytest.approx(lon)
    assert ev["position"]["lat"] == pytest.approx(lat)


def test_status_reports_age_period_and_state():
    clock = FakeClock()
    live = SensorLiveness(LivenessConfig(learn_batches=2, max_silence=5.0), clock=clock)
    feed(live, clock, "radar-1", 1.0, 3)
    clock.now += 9.0
    live.check()
    st = live.status()
    assert st["sensors"]["radar-1"]["last_seen_s"] == pytest.approx(10.0)
    assert st["sensors"]["radar-1"]["silent"] is True
    assert st["sensors_silent"] == ["radar-1"]


def test_degraded_tracks_only_seen_by_the_silent_sensor_inside_its_coverage():
    clock = FakeClock()
    live = SensorLiveness(LivenessConfig(max_silence=3.0, track_memory=30.0), clock=clock,
                          known=["radar-1"])
    live.observe("radar-1", "radar", coverage=SQUARE, updated=np.array([1, 2, 4]))
    live.observe("drone-1", "drone", coverage=SQUARE + 5000.0, updated=np.array([2]))
    ids = np.array([1, 2, 3, 4])
    xy = np.array([[100.0, 100.0], [200.0, 200.0], [300.0, 300.0], [9000.0, 9000.0]])
    assert not degraded_tracks(ids, xy, live).any()  # nobody silent yet
    clock.now += 2.0
    live.observe("drone-1", "drone", updated=np.array([2]))  # drone-1 stays alive
    clock.now += 2.0
    live.check()
    assert live.silent() == {"radar-1"}
    got = degraded_tracks(ids, xy, live)
    # 1: only radar-1 saw it, inside; 2: drone-1 (alive) saw it; 3: seen by nobody lately,
    # inside the blind coverage; 4: outside radar-1's coverage.
    assert got.tolist() == [True, False, True, False]
    live.prune_tracks([2, 3])
    assert set(live.track_sensors) == {2}


def test_config_is_checked():
    with pytest.raises(ValueError):
        LivenessConfig(silent_periods=0)
    with pytest.raises(ValueError):
        LivenessConfig(min_silence=10, max_silence=5)
    with pytest.raises(ValueError):
        LivenessConfig(expected_periods={"a": 0.0})


# -- wired into the service's pipeline ----------------------------------------------


def test_pipeline_says_sensor_silent_and_back_and_stamps_what_it_publishes():
    from fusion import Tracker
    from fusion.alerting.engine import AlertEngine
    from fusion.alerting.zones import Zone, ZoneSet
    from fusion.messages import DetectionBatch, encode_batch, unpack_map
    from fusion.service import Pipeline, ServiceConfig

    clock = FakeClock()
    frame = LocalFrame(23.8, 44.98)
    zone = np.array([[-5000.0, 2000.0], [5000.0, 2000.0], [5000.0, 3000.0], [-5000.0, 3000.0]])
    engine = AlertEngine(ZoneSet([Zone.from_local("zone-t", zone)]), frame=frame)
    sent: list[tuple[bytes, dict]] = []
    pipe = Pipeline(Tracker(), engine, ServiceConfig(reorder_window=0.0),
                    emit=lambda topic, payload: sent.append((topic, unpack_map(payload))),
                    clock=clock, wall=lambda: 2_000_000_000.0)
    pipe.enable_ops(SensorLiveness(LivenessConfig(learn_batches=4, min_silence=1.0),
                                   clock=clock, to_lonlat=frame.to_lonlat))
    cover = {"radar-1": SQUARE * 4 - 2000.0, "radar-2": SQUARE * 4 + [3000.0, -2000.0]}
    seq = {"radar-1": 0, "radar-2": 0}
    rng = np.random.default_rng(15)

    def scan(sensor: str, t: float) -> None:
        # one target only radar-1 sees, standing at (0, 0)
        z = rng.normal(0.0, 5.0, (1, 2)) if sensor == "radar-1" else np.zeros((0, 2))
        batch = DetectionBatch.build(sensor, "radar", seq[sensor], t, z, np.eye(2) * 25.0,
                                     coverage=cover[sensor])
        seq[sensor] += 1
        assert pipe.receive([batch.topic, encode_batch(batch)], t_recv=clock.now)
        pipe.release(flush=True)

    for k in range(10):
        scan("radar-1", float(k))
        scan("radar-2", float(k))
        clock.now += 1.0
        pipe.timer(clock.now)
    killed = clock.now - 1.0
    assert not [t for t, _ in sent if t.startswith(b"alert.sensors.")]
    msg = unpack_map(pipe.track_message())
    assert msg["n"] == 1 and msg["time_utc"].endswith("Z")
    lonlat = np.frombuffer(msg["lonlat"], "<f8").reshape(-1, 2)
    assert np.allclose(lonlat[0], [23.8, 44.98], atol=1e-3)
    assert msg["degraded"] == b"\x00"
    # radar-1 is killed; radar-2 goes on
    silent = []
    k = 10
    while not silent:
        scan("radar-2", float(k))
        k += 1
        clock.now += 0.5
        pipe.timer(clock.now)
        silent = [m for t, m in sent if t == b"alert.sensors.sensor_silent"]
        assert clock.now - killed <= 5 * 1.0 + 0.5, "no sensor_silent within 5 periods"
    (ev,) = silent
    assert ev["sensor"] == "radar-1" and ev["run"] == pipe.run_id and ev["seq"] == 1
    assert ev["time_utc"].endswith("Z") and ev["position"]["lon"] is not None
    assert unpack_map(pipe.track_message())["degraded"] == b"\x01"  # only radar-1 saw it
    st = pipe.status()
    assert st["sensors_silent"] == ["radar-1"] and st["latency_hist"]["count"] == 20 + (k - 10)
    beat = pipe.heartbeat()
    assert beat["type"] == "heartbeat" and beat["run"] == pipe.run_id
    scan("radar-1", float(k))
    (back,) = [m for t, m in sent if t == b"alert.sensors.sensor_back"]
    assert back["alert_id"] == ev["alert_id"]
