"""The transport under hostile peers: plaintext knocking on CURVE, oversized frames,
request floods. Each test proves the legitimate path works in the same run."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.messages import MAX_PAYLOAD_BYTES, pack_map, unpack_map
from fusion.security import CurveServer, SecurityConfig, create_keys, load_keys
from fusion.service import Pipeline, ServiceConfig, TrackerService

DEADLINE = 60.0


def status_until(watch: zmq.Socket, condition, deadline: float = DEADLINE) -> dict:
    """Read status messages until ``condition(status)`` holds; fail with the last one."""
    end = time.monotonic() + deadline
    status: dict = {}
    while time.monotonic() < end:
        if watch.poll(1000):
            status = unpack_map(watch.recv_multipart()[-1])
            if condition(status):
                return status
    raise AssertionError(f"condition not met; last status {status}")


def start(service: TrackerService) -> threading.Thread:
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    assert service.ready.wait(10)
    return thread


def detection(sensor: str, seq: int, t: float) -> list[bytes]:
    b = DetectionBatch.build(sensor, "radar", seq, t, [[0.0, -2000.0]], np.eye(2) * 100.0)
    return [b.topic, encode_batch(b)]


@pytest.fixture
def plain_service(engine, ipc_endpoint):
    config = ServiceConfig(
        det_bind=(ipc_endpoint("det"),), publish=ipc_endpoint("pub"),
        snapshot=ipc_endpoint("snap"), reorder_window=0.0, status_interval=0.1,
    )
    ctx = zmq.Context()
    service = TrackerService(Pipeline(Tracker(), engine, config), config, context=ctx)
    thread = start(service)
    yield service, config, ctx
    service.stop()
    thread.join(10)
    assert not thread.is_alive()
    ctx.destroy(linger=0)


def send_until_counted(ctx, config, watch, sensor="radar-1", first_seq=0, t0=0.0):
    """Publish batches of ``sensor`` until status counts one (proof the path delivers)."""
    with ctx.socket(zmq.PUB) as pub:
        pub.setsockopt(zmq.LINGER, 0)
        pub.connect(config.det_bind[0])
        seq = first_seq
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            pub.send_multipart(detection(sensor, seq, t0 + 0.01 * seq))
            seq += 1
            if watch.poll(200):
                status = unpack_map(watch.recv_multipart()[-1])
                if status["batches"] >= 1:
                    return status, seq
    raise AssertionError("no batch was ever counted")


def test_an_oversized_frame_is_dropped_by_the_transport_and_others_go_on(plain_service):
    service, config, ctx = plain_service
    with ctx.socket(zmq.SUB) as watch, ctx.socket(zmq.PUB) as big:
        watch.setsockopt(zmq.LINGER, 0)
        watch.setsockopt(zmq.SUBSCRIBE, b"status")
        watch.connect(config.publish)
        big.setsockopt(zmq.LINGER, 0)
        big.setsockopt(zmq.SNDHWM, 4)
        big.connect(config.det_bind[0])
        # Over ZMQ_MAXMSGSIZE: libzmq drops the connection before buffering the frame.
        oversized = b"\x00" * (MAX_PAYLOAD_BYTES + 1024 * 1024)
        for _ in range(3):
            big.send_multipart([b"det.radar.big", oversized])
        status, _ = send_until_counted(ctx, config, watch)
        assert status["batches"] >= 1  # the legitimate publisher's batch was processed
        assert status["rejected"].get("size", 0) == 0  # never reached the application


def test_a_snapshot_flood_is_rate_limited_and_tracking_goes_on(plain_service):
    service, config, ctx = plain_service
    with ctx.socket(zmq.SUB) as watch, ctx.socket(zmq.DEALER) as flood, \
            ctx.socket(zmq.PUB) as pub:
        for sock in (watch, flood, pub):
            sock.setsockopt(zmq.LINGER, 0)
        watch.setsockopt(zmq.SUBSCRIBE, b"status")
        watch.connect(config.publish)
        flood.connect(config.snapshot)
        request = pack_map({"type": "open_alerts"})
        # Positive control: one request is answered with the snapshot.
        flood.send_multipart([b"", request])
        assert flood.poll(10_000)
        assert unpack_map(flood.recv_multipart()[-1])["type"] == "open_alerts"
        sent = 0
        for _ in range(5000):
            try:
                flood.send_multipart([b"", request], zmq.NOBLOCK)
            except zmq.Again:  # the DEALER's own high-water mark: as fast as it can go
                continue
            sent += 1
        assert sent >= 500
        pub.connect(config.det_bind[0])
        seq = 0
        end = time.monotonic() + DEADLINE
        status: dict = {}
        while time.monotonic() < end:
            pub.send_multipart(detection("radar-1", seq, 0.01 * seq))
            seq += 1
            if watch.poll(100):
                status = unpack_map(watch.recv_multipart()[-1])
                if status["batches"] >= 20 and status["requests"].get("rate_limited", 0):
                    break
        assert status["batches"] >= 20, status
        assert status["requests"]["rate_limited"] > 0
        answers = []
        while flood.poll(200):
            answers.append(unpack_map(flood.recv_multipart()[-1]))
        assert {"rate_limited"} >= {a.get("reason") for a in answers if a["type"] == "error"}


def test_a_plaintext_publisher_on_a_curve_socket_is_counted(engine, ipc_endpoint, tmp_path):
    keys = tmp_path / "keys"
    for name in ("server", "gateway", "ops"):
        create_keys(keys, name)
    security = SecurityConfig(
        server_key="server.key_secret", keys_dir=str(keys), subscribers=("ops",),
        sensors={"radar-1": ("gateway",)}, base_dir=str(keys),
    )
    config = ServiceConfig(
        det_bind=(ipc_endpoint("det"),), publish=ipc_endpoint("pub"),
        snapshot=ipc_endpoint("snap"), reorder_window=0.0, status_interval=0.1,
    )
    ctx = zmq.Context()
    service = TrackerService(Pipeline(Tracker(), engine, config), config, context=ctx,
                             security=CurveServer(security))
    thread = start(service)
    try:
        ops = load_keys(keys / "ops.key_secret", keys / "server.key")
        gateway = load_keys(keys / "gateway.key_secret", keys / "server.key")
        with ctx.socket(zmq.SUB) as watch, ctx.socket(zmq.PUB) as plain, \
                ctx.socket(zmq.PUB) as good:
            for sock in (watch, plain, good):
                sock.setsockopt(zmq.LINGER, 0)
            ops.apply_client(watch)
            watch.setsockopt(zmq.SUBSCRIBE, b"status")
            watch.connect(config.publish)
            plain.connect(config.det_bind[0])  # no CURVE: its handshake must fail
            plain.send_multipart(detection("radar-1", 0, 0.0))
            gateway.apply_client(good)
            good.connect(config.det_bind[0])
            seq = 0
            end = time.monotonic() + DEADLINE
            status: dict = {}
            while time.monotonic() < end:
                good.send_multipart(detection("radar-1", seq, 0.01 * seq))
                seq += 1
                if watch.poll(100):
                    status = unpack_map(watch.recv_multipart()[-1])
                    failed = sum(v for k, v in status["connections"].items()
                                 if k.startswith("detections.failed"))
                    if status["batches"] >= 1 and failed >= 1:
                        break
            assert status["batches"] >= 1, status  # the keyed publisher gets through
            assert any(k.startswith("detections.failed") for k in status["connections"]), status
    finally:
        service.stop()
        thread.join(10)
        ctx.destroy(linger=0)
    assert not thread.is_alive()
