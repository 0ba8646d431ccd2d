"""The service's message path: in-process (Pipeline) and over real sockets."""

from __future__ import annotations

import msgpack
import numpy as np

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.messages import unpack_map
from fusion.service import Pipeline, ServiceConfig
from fusion.service.alertlog import read_alert_log
from fusion.service.client import AlertClient
from tests.fusion.support import FakeClock, crossing_batches, frames


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


def test_late_subscriber_gets_the_open_alerts_and_the_log_has_them(
    running_service, context, status_watch, service_publisher
):
    service, config, result = running_service
    watch = status_watch(config.publish)
    pub = service_publisher(config.det_bind[0], watch, probe_sensor="radar-1")
    batches = crossing_batches(70, first_seq=1)  # stops inside the strip: the incursion stays open
    for batch in batches:
        pub.send_batch(batch)
    done = pub.baseline["batches"] + len(batches)
    watch.wait(lambda s: s["batches"] >= done and s["open_alerts"] >= 1)
    client = AlertClient(config.publish, config.snapshot, timeout=0.5, context=context)
    snapshot = [a for a in client if a.get("snapshot")]
    assert [a["kind"] for a in snapshot] == ["incursion"]
    assert snapshot[0]["event"] in ("open", "update") and snapshot[0]["side"] == "south"
    service.stop()
    logged, report = read_alert_log(config.alert_log)
    assert report.ok
    assert any(e["kind"] == "incursion" and e["event"] == "open" for e in logged)


def test_hostile_bytes_over_the_socket_do_not_stop_the_service(
    running_service, status_watch, service_publisher
):
    service, config, result = running_service
    rng = np.random.default_rng(0)
    watch = status_watch(config.publish)
    pub = service_publisher(config.det_bind[0], watch, probe_sensor="radar-1")
    base = pub.baseline
    good = crossing_batches(10, first_seq=1)
    for batch in good[:5]:
        pub.send_batch(batch)
    for _ in range(300):
        pub.send(
            [b"det." + rng.bytes(4)]
            + [rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(0, 3)))]
        )
    for batch in good[5:]:  # after the barrage: the service must still be tracking
        pub.send_batch(batch)
    # One connection delivers in order, so when the last good batch is counted every
    # hostile frame before it has been seen too.
    status = watch.wait(lambda s: s["batches"] >= base["batches"] + 10)
    assert status["rejected_total"] - base["rejected_total"] == 300
    assert status["batches"] == base["batches"] + 10
    assert status["received"] == base["received"] + 10
    assert status["confirmed_tracks"] == 1
    service.stop()
    watch.wait(lambda s: s.get("final"))  # from here on the service thread is done
    confirmed = service.pipeline.tracker.confirmed()
    assert len(confirmed.ids) == 1
    np.testing.assert_allclose(confirmed.x[0, :2], [0.0, -1500.0 + 20.0 * 9], atol=60.0)


def test_status_counts_track_ids_kept_across_a_loss(engine):
    """Four empty scans lose the crossing vehicle's track; its next detection brings the
    track back under its id, and status says so (``ids_continued``)."""
    emitted = []
    pipe, clock = make_pipeline(engine, emitted, reorder_window=0.0)
    batches = crossing_batches(30)
    for k in range(12, 16):
        b = batches[k]
        batches[k] = DetectionBatch.build(b.sensor_id, "radar", b.seq, b.t, np.empty((0, 2)),
                                          np.empty((0, 2, 2)))
    ids = []
    for batch in batches:
        clock.now = batch.t
        assert pipe.receive(frames(batch))
        pipe.release()
        ids.append(pipe.tracker.confirmed().ids.tolist())
    assert ids[15] == [] and ids[11] == ids[16] == ids[-1] != []
    assert pipe.status()["ids_continued"] == {"revived": 1, "reacquired": 0, "superseded": 0}
