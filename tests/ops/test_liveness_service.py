"""The live service says a killed sensor is silent, and that it is back; its heartbeat,
alerts and track pictures carry UTC time and lon/lat (issue 15, wired service)."""

from __future__ import annotations

import threading
import time

import numpy as np
import zmq

from fusion import Tracker
from fusion.alerting.engine import AlertEngine
from fusion.alerting.zones import Zone, ZoneSet
from fusion.geo import LocalFrame
from fusion.messages import pack_map, unpack_map
from fusion.service import Pipeline, ServiceConfig, TrackerService
from fusion.service.liveness import LivenessConfig, SensorLiveness
from tests.sockets import ServicePublisher, StatusWatch, probe_batch

DEADLINE = 20.0
STRIP = np.array([[-5000.0, -500.0], [5000.0, -500.0], [5000.0, 500.0], [-5000.0, 500.0]])


def _next(sub: zmq.Socket, topic: bytes, deadline: float) -> dict:
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {topic!r} in time"
        if sub.poll(int(left * 1e3)):
            got, payload = sub.recv_multipart()
            if got == topic:
                return unpack_map(payload)


def test_killed_sensor_is_reported_silent_then_back(tmp_path):
    frame = LocalFrame(23.8, 44.98)
    engine = AlertEngine(ZoneSet([Zone.from_local("zone-t", STRIP)]), frame=frame)
    config = ServiceConfig(det_bind=(f"ipc://{tmp_path}/det.sock",),
                           publish=f"ipc://{tmp_path}/pub.sock",
                           snapshot=f"ipc://{tmp_path}/snap.sock", reorder_window=0.0,
                           track_interval=0.1, status_interval=0.2)
    pipeline = Pipeline(Tracker(), engine, config)
    # radar-1 is configured to send ten times a second: silent after 3 missed periods,
    # but never sooner than 0.3 s
    pipeline.enable_ops(SensorLiveness(
        LivenessConfig(silent_periods=3, min_silence=0.3, expected_periods={"radar-1": 0.1}),
        clock=pipeline.clock, to_lonlat=frame.to_lonlat))
    ctx = zmq.Context()
    service = TrackerService(pipeline, config, context=ctx)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        assert service.ready.wait(DEADLINE)
        with ctx.socket(zmq.SUB) as sub, StatusWatch(ctx, config.publish) as watch:
            sub.setsockopt(zmq.LINGER, 0)
            for topic in (b"alert.sensors.", b"heartbeat"):
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(config.publish)
            deadline = time.monotonic() + DEADLINE
            beat = _next(sub, b"heartbeat", deadline)  # proves the SUB is connected
            assert beat["run"] == pipeline.run_id and "time_utc" in beat
            with ServicePublisher(ctx, config.det_bind[0], watch,
                                  probe_sensor="radar-1") as radar:
                radar.open(DEADLINE)  # one batch from radar-1, counted; then it is killed
                silent = _next(sub, b"alert.sensors.sensor_silent", deadline)
                assert silent["sensor"] == "radar-1" and silent["event"] == "open"
                assert abs(silent["silence_limit_s"] - 0.3) < 1e-9
                assert silent["last_seen_s"] >= silent["silence_limit_s"]
                assert silent["time_utc"] is None or silent["time_utc"].endswith("Z")
                status = watch.wait(lambda s: s.get("sensors_silent") == ["radar-1"], DEADLINE)
                assert status["sensors"]["radar-1"]["silent"] is True
                # it is in the open-alert snapshot for late subscribers
                with ctx.socket(zmq.DEALER) as req:
                    req.setsockopt(zmq.LINGER, 0)
                    req.connect(config.snapshot)
                    req.send_multipart([b"", pack_map({"type": "open_alerts"})])
                    assert req.poll(int(DEADLINE * 1e3))
                    snap = unpack_map(req.recv_multipart()[-1])
                assert [a["kind"] for a in snap["alerts"]] == ["sensor_silent"]
                radar.send_batch(probe_batch("radar-1", 1, silent["t"] or 0.0))
                back = _next(sub, b"alert.sensors.sensor_back", deadline)
                assert back["alert_id"] == silent["alert_id"] and back["event"] == "close"
    finally:
        service.stop()
        thread.join(DEADLINE)
        ctx.destroy(linger=0)
    assert not thread.is_alive()
