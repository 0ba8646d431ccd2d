"""The service's message path: in-process (Pipeline) and over real sockets."""

from __future__ import annotations

import threading

import msgpack
import numpy as np
import pytest
import zmq

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.messages import unpack_map
from fusion.service import Pipeline, ServiceConfig, TrackerService
from fusion.service.alertlog import AlertLog, read_alert_log
from fusion.service.client import AlertClient


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def crossing_batches(n=120, sensor="radar-1", start=(0.0, -1500.0), velocity=(0.0, 20.0)):
    """A vehicle driving north across the strip at 20 m/s, one detection per second."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        t = float(k)
        z = np.add(start, np.multiply(velocity, t)) + rng.normal(scale=10.0, size=2)
        out.append(DetectionBatch.build(sensor, "radar", k, t, [z], np.eye(2) * 100.0))
    return out


def frames(batch):
    return [batch.topic, encode_batch(batch)]


def make_pipeline(engine, emitted, **config):
    clock = FakeClock()
    pipe = Pipeline(
        Tracker(),
        engine,
        ServiceConfig(det_bind=("inproc://x",), **config),
        emit=lambda topic, payload: emitted.append((topic, payload)),
        clock=clock,
    )
    return pipe, clock


def alerts_of(emitted):
    return [unpack_map(p) for t, p in emitted if t.startswith(b"alert.")]


def test_crossing_raises_predicted_then_incursion_with_side_and_evidence(engine):
    emitted = []
    pipe, clock = make_pipeline(engine, emitted, reorder_window=0.0)
    for batch in crossing_batches(160):
        clock.now = batch.t
        assert pipe.receive(frames(batch))
        pipe.release()
    opened = [(a["kind"], a) for a in alerts_of(emitted) if a["event"] == "open"]
    kinds = [k for k, _ in opened]
    assert kinds.index("predicted_incursion") < kinds.index("incursion")
    incursion = dict(opened)["incursion"]
    assert incursion["zone"] == "zone-t" and incursion["side"] == "south"
    assert incursion["evidence"] == ["radar-1"]
    assert "exit" in kinds  # it drives out of the north side


def test_bad_messages_are_counted_by_reason_and_good_data_still_tracked(engine):
    emitted = []
    pipe, clock = make_pipeline(engine, emitted, reorder_window=0.0)
    good = crossing_batches(20)
    nan_batch = msgpack.unpackb(encode_batch(good[0]), raw=False)
    nan_batch["z"] = np.array([[np.nan, 0.0]]).tobytes()
    wrong_version = msgpack.unpackb(encode_batch(good[0]), raw=False)
    wrong_version["v"] = 99
    hostile = [
        [b"det.radar.radar-1", b"\xff\x00garbage"],
        [b"det.radar.radar-1", msgpack.packb(wrong_version)],
        [b"det.radar.radar-1", msgpack.packb(nan_batch)],
        [b"det.radar.radar-1"],  # one frame
        [b"det.radar.other", encode_batch(good[0])],  # topic does not match the payload
    ]
    for k, batch in enumerate(good):
        clock.now = batch.t
        pipe.receive(hostile[k % len(hostile)])
        assert pipe.receive(frames(batch))
        pipe.release()
    status = pipe.status()
    assert status["rejected"] == {
        "msgpack": 4,
        "version": 4,
        "nonfinite": 4,
        "frames": 4,
        "topic": 4,
    }
    assert status["batches"] == 20 and status["confirmed_tracks"] == 1


def test_sequence_gaps_duplicates_and_times_are_checked(engine):
    emitted = []
    pipe, clock = make_pipeline(
        engine,
        emitted,
        reorder_window=0.0,
        max_future=100.0,
        max_lateness=30.0,
        sensors=("radar-1",),
    )
    batches = crossing_batches(60)
    for batch in batches[:10] + batches[13:50]:  # seq 10..12 lost
        pipe.receive(frames(batch))
        pipe.release()
    assert pipe.gaps == {"radar-1": 3}
    assert not pipe.receive(frames(batches[20]))  # replayed sequence number
    future = DetectionBatch.build("radar-1", "radar", 50, 1e6, [[0.0, 0.0]], np.eye(2))
    old = DetectionBatch.build("radar-1", "radar", 51, 1.0, [[0.0, 0.0]], np.eye(2))
    stranger = DetectionBatch.build("uav-9", "drone", 0, 49.0, [[0.0, 0.0]], np.eye(2))
    for batch in (future, old, stranger):
        assert not pipe.receive(frames(batch))
    assert pipe.rejected == {"duplicate": 1, "future": 1, "too_old": 1, "unknown_sensor": 1}


def test_reorder_window_puts_batches_in_measurement_order(engine):
    emitted = []
    pipe, clock = make_pipeline(engine, emitted, reorder_window=2.0)
    a, b = crossing_batches(2, sensor="radar-1")
    c = DetectionBatch.build("radar-2", "radar", 0, 0.5, [[0.0, -2490.0]], np.eye(2) * 100.0)
    order = []
    pipe.tracker.process = lambda batch, process=pipe.tracker.process: (
        order.append(batch.t),
        process(batch),
    )[1]
    for batch in (a, b, c):  # c arrives after b although measured before it
        pipe.receive(frames(batch))
        pipe.release()
    assert order == []  # all still inside the window
    clock.now = 2.5
    pipe.release()
    assert order == [0.0, 0.5, 1.0]
    assert pipe.status()["late_batches"] == 0


def test_late_batch_beyond_the_window_is_counted_and_fused(engine):
    emitted = []
    pipe, clock = make_pipeline(engine, emitted, reorder_window=0.0)
    batches = crossing_batches(30)
    for batch in batches:
        pipe.receive(frames(batch))
        pipe.release()
    late = DetectionBatch.build(
        "sat-1", "satellite", 0, 25.5, [[0.0, -1500 + 20 * 25.5]], np.eye(2) * 25.0
    )
    pipe.receive(frames(late))
    pipe.release()
    status = pipe.status()
    assert status["late_batches"] == 1 and status["oosm_updates"] == 1


@pytest.fixture
def running_service(engine, context, ipc_endpoint, tmp_path):
    config = ServiceConfig(
        det_bind=(ipc_endpoint("det"),),
        publish=ipc_endpoint("pub"),
        snapshot=ipc_endpoint("snap"),
        reorder_window=0.0,
        track_interval=0.2,
        status_interval=0.2,
        alert_log=str(tmp_path / "alerts.log"),
    )
    pipeline = Pipeline(Tracker(), engine, config, alert_log=AlertLog(config.alert_log))
    service = TrackerService(pipeline, config, context=context)
    result = {}
    thread = threading.Thread(target=lambda: result.update(service.run()), daemon=True)
    thread.start()
    assert service.ready.wait(5)
    yield service, config, result
    service.stop()
    thread.join(10)
    assert not thread.is_alive()


def publish_until_seen(context, config, batches, sub_timeout=5.0):
    """Publish batches on a socket the service's SUB binds, waiting for its status first."""
    with context.socket(zmq.PUB) as pub, context.socket(zmq.SUB) as watch:
        pub.setsockopt(zmq.LINGER, 0)
        watch.setsockopt(zmq.LINGER, 0)
        watch.setsockopt(zmq.SUBSCRIBE, b"status")
        watch.connect(config.publish)
        pub.connect(config.det_bind[0])
        # Handshake instead of a sleep: send a probe until the service has counted one.
        probe = DetectionBatch.build(
            "probe", "radar", 0, 0.0, np.empty((0, 2)), np.empty((0, 2, 2))
        )
        for _ in range(100):
            pub.send_multipart(frames(probe))
            assert watch.poll(sub_timeout * 1e3)
            if unpack_map(watch.recv_multipart()[-1])["received"] >= 1:
                break
        for batch in batches:
            pub.send_multipart(frames(batch))
        deadline_status = None
        for _ in range(200):
            assert watch.poll(sub_timeout * 1e3)
            deadline_status = unpack_map(watch.recv_multipart()[-1])
            if deadline_status["batches"] >= len(batches) + 1:
                return deadline_status
        raise AssertionError(f"service did not process the batches: {deadline_status}")


def test_late_subscriber_gets_the_open_alerts_and_the_log_has_them(running_service, context):
    service, config, result = running_service
    batches = crossing_batches(70)  # stops inside the strip: the incursion stays open
    # measurement times from 1 s (the probe used t = 0)
    batches = [
        DetectionBatch.build(b.sensor_id, b.sensor_kind, b.seq, b.t + 1.0, b.z, b.R)
        for b in batches
    ]
    publish_until_seen(context, config, batches)
    client = AlertClient(config.publish, config.snapshot, timeout=0.5, context=context)
    snapshot = [a for a in client if a.get("snapshot")]
    assert [a["kind"] for a in snapshot] == ["incursion"]
    assert snapshot[0]["event"] in ("open", "update") and snapshot[0]["side"] == "south"
    service.stop()
    logged, report = read_alert_log(config.alert_log)
    assert report.ok
    assert any(e["kind"] == "incursion" and e["event"] == "open" for e in logged)


def test_hostile_bytes_over_the_socket_do_not_stop_the_service(running_service, context):
    service, config, result = running_service
    rng = np.random.default_rng(0)
    status = publish_until_seen(context, config, crossing_batches(5))
    with context.socket(zmq.PUB) as pub, context.socket(zmq.SUB) as watch:
        pub.setsockopt(zmq.LINGER, 0)
        watch.setsockopt(zmq.LINGER, 0)
        watch.setsockopt(zmq.SUBSCRIBE, b"status")
        watch.connect(config.publish)
        pub.connect(config.det_bind[0])
        sent = 0
        for _ in range(300):
            parts = [b"det." + rng.bytes(4)] + [
                rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(0, 3)))
            ]
            pub.send_multipart(parts)
            sent += 1
        for _ in range(100):
            assert watch.poll(5000)
            status = unpack_map(watch.recv_multipart()[-1])
            if status["rejected_total"] >= 200:
                break
    assert status["rejected_total"] >= 200
    assert status["batches"] == 6  # probe + the 5 good ones, still tracked
    assert service.pipeline.tracker.confirmed() is not None
