"""CurveZMQ on the service: allow-lists for publishers and subscribers, per-sensor keys."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.config import ConfigError
from fusion.messages import unpack_map
from fusion.security import (
    DOMAIN_DETECTIONS,
    DOMAIN_SUBSCRIBERS,
    CurveServer,
    SecurityConfig,
    SensorKeyPolicy,
    create_keys,
    load_keys,
)
from fusion.service import Pipeline, ServiceConfig, TrackerService
from fusion.service.client import AlertClient


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    for name in ("server", "gateway-a", "gateway-b", "ops", "stranger"):
        create_keys(d, name)
    return d


def client_keys(keys, name):
    return load_keys(keys / f"{name}.key_secret", keys / "server.key")


@pytest.fixture
def secure_service(engine, keys, ipc_endpoint):
    security = SecurityConfig(
        server_key="server.key_secret", keys_dir=str(keys), subscribers=("ops",),
        sensors={"radar-1": ("gateway-a",), "radar-2": ("gateway-b",)}, base_dir=str(keys),
    )
    config = ServiceConfig(
        det_bind=(ipc_endpoint("det"),), publish=ipc_endpoint("pub"),
        snapshot=ipc_endpoint("snap"), reorder_window=0.0, status_interval=0.1,
        track_interval=0.5,
    )
    ctx = zmq.Context()  # the service's own: one ZAP handler per context
    service = TrackerService(Pipeline(Tracker(), engine, config), config, context=ctx,
                             security=CurveServer(security))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    assert service.ready.wait(5)
    yield service, config
    service.stop()
    thread.join(10)
    assert not thread.is_alive()
    ctx.destroy(linger=0)


def watch_status(context, config, keys, until, timeout=10.0):
    """Read status as the 'ops' subscriber until ``until(status)``; return it."""
    with context.socket(zmq.SUB) as watch:
        watch.setsockopt(zmq.LINGER, 0)
        client_keys(keys, "ops").apply_client(watch)
        watch.setsockopt(zmq.SUBSCRIBE, b"status")
        watch.connect(config.publish)
        status = None
        for _ in range(int(timeout / 0.1) + 10):
            assert watch.poll(timeout * 1e3), f"no status; last {status}"
            status = unpack_map(watch.recv_multipart()[-1])
            if until(status):
                return status
    raise AssertionError(f"condition never met: {status}")


def batch(sensor, seq, t=1.0):
    b = DetectionBatch.build(sensor, "radar", seq, t, [[0.0, -2000.0 + seq]], np.eye(2) * 100.0)
    return [b.topic, encode_batch(b)]


def test_policy_matches_exact_ids_and_patterns():
    policy = SensorKeyPolicy({"radar-1": ["K1"], "radar-*": ["GW"], "uav-?": ["U"]})
    assert policy("radar-1", "K1") and policy("radar-1", "GW") and policy("radar-7", "GW")
    assert not policy("radar-7", "K1") and not policy("uav-10", "U") and policy("uav-1", "U")
    assert not policy("radar-1", None)


def test_config_reads_the_security_table_relative_to_the_file(tmp_path, keys):
    path = tmp_path / "svc.toml"
    path.write_text(
        '[security]\nserver_key = "keys/server.key_secret"\nkeys_dir = "keys"\n'
        'subscribers = ["ops"]\n[security.sensors]\n"radar-*" = ["gateway-a"]\n'
    )
    config = SecurityConfig.from_toml(path)
    server = CurveServer(config)
    assert server.policy("radar-3", load_keys(keys / "gateway-a.key_secret").public.decode())
    path.write_text('[security]\nserver_key = "keys/server.key_secret"\nkeys_dir = "keys"\n'
                    'subscribers = ["nobody"]\n'
                    '[security.sensors]\n"x" = ["ops"]\n')
    with pytest.raises(ConfigError, match="nobody"):
        CurveServer(SecurityConfig.from_toml(path))
    path.write_text('[security]\nserver_key = 3\n')
    with pytest.raises(ConfigError, match="server_key"):
        SecurityConfig.from_toml(path)


def test_known_key_publishes_and_cannot_spoof_another_sensor(secure_service, context, keys):
    service, config = secure_service
    with context.socket(zmq.PUB) as pub:
        pub.setsockopt(zmq.LINGER, 0)
        client_keys(keys, "gateway-a").apply_client(pub)
        pub.connect(config.det_bind[0])
        with context.socket(zmq.SUB) as watch:
            watch.setsockopt(zmq.LINGER, 0)
            client_keys(keys, "ops").apply_client(watch)
            watch.setsockopt(zmq.SUBSCRIBE, b"status")
            watch.connect(config.publish)
            # Handshake: send radar-1 batches (fresh seqs) until one is counted.
            seq = 0
            while True:
                pub.send_multipart(batch("radar-1", seq))
                seq += 1
                assert watch.poll(5000) and seq < 200
                if unpack_map(watch.recv_multipart()[-1])["received"] >= 1:
                    break
        # Allowed in, but claims radar-2, which is registered to gateway-b only.
        for k in range(5):
            pub.send_multipart(batch("radar-2", k))
        pub.send_multipart(batch("radar-1", seq))
        status = watch_status(
            context, config, keys,
            lambda s: s["rejected"].get("spoofed_sensor", 0) >= 5 and s["received"] >= 2,
        )
    assert status["secure"] is True
    assert status["rejected"] == {"spoofed_sensor": 5}
    assert "radar-2" not in service.pipeline.last_seq  # the spoofer moved nothing


def _denied(domain, n=1):
    return lambda s: s["auth_denied"].get(domain, 0) >= n


def test_unknown_key_cannot_publish(secure_service, context, keys):
    service, config = secure_service
    with context.socket(zmq.PUB) as pub:
        pub.setsockopt(zmq.LINGER, 0)
        client_keys(keys, "stranger").apply_client(pub)
        pub.connect(config.det_bind[0])
        pub.send_multipart(batch("radar-1", 0))
        status = watch_status(context, config, keys, _denied(DOMAIN_DETECTIONS))
        for k in range(1, 20):
            pub.send_multipart(batch("radar-1", k))
        # Subscribers are a different allow-list: a publisher key cannot read either.
        status = watch_status(context, config, keys, lambda s: s["uptime"] > status["uptime"])
    assert status["received"] == 0 and status["rejected_total"] == 0


def test_unknown_key_cannot_subscribe_or_ask_for_a_snapshot(secure_service, context, keys):
    service, config = secure_service
    for name in ("stranger", "gateway-a"):  # unknown, and a publisher-only key
        client = AlertClient(config.publish, config.snapshot, snapshot_timeout=0.5,
                             timeout=0.5, context=context, curve=client_keys(keys, name))
        with pytest.raises(TimeoutError):
            list(client)
    watch_status(context, config, keys, _denied(DOMAIN_SUBSCRIBERS, 4))
    with context.socket(zmq.SUB) as sub:
        sub.setsockopt(zmq.LINGER, 0)
        client_keys(keys, "stranger").apply_client(sub)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(config.publish)
        watch_status(context, config, keys, _denied(DOMAIN_SUBSCRIBERS, 5))
        # Several status intervals have passed since it was refused: nothing arrived.
        watch_status(context, config, keys, lambda s: True)
        assert not sub.poll(300)
    # The allowed subscriber gets its (empty) snapshot and the status stream.
    ops = AlertClient(config.publish, config.snapshot, timeout=0.3, context=context,
                      curve=client_keys(keys, "ops"))
    assert list(ops) == [] and ops.status is not None and ops.status["secure"] is True


def test_client_in_the_clear_cannot_talk_to_a_secured_service(secure_service, context, keys):
    service, config = secure_service
    client = AlertClient(config.publish, config.snapshot, snapshot_timeout=0.5, context=context)
    with pytest.raises(TimeoutError):
        list(client)
