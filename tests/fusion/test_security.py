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


def test_known_key_publishes_and_cannot_spoof_another_sensor(
    secure_service, keys, status_watch, service_publisher
):
    service, config = secure_service
    watch = status_watch(config.publish, client_keys(keys, "ops"))
    pub = service_publisher(
        config.det_bind[0], watch, curve=client_keys(keys, "gateway-a"), probe_sensor="radar-1"
    )
    # Allowed in, but claims radar-2, which is registered to gateway-b only.
    for k in range(5):
        pub.send(batch("radar-2", k))
    pub.send(batch("radar-1", 1))
    status = watch.wait(lambda s: s["received"] >= 2)  # after the spoofs on one connection
    assert status["secure"] is True
    assert status["rejected"] == {"spoofed_sensor": 5}
    assert status["received"] == 2  # the probe and radar-1's own batch
    assert "radar-2" not in service.pipeline.last_seq  # the spoofer moved nothing


def _denied(domain, n=1):
    return lambda s: s["auth_denied"].get(domain, 0) >= n


def test_unknown_key_cannot_publish(secure_service, context, keys, status_watch,
                                    service_publisher):
    service, config = secure_service
    watch = status_watch(config.publish, client_keys(keys, "ops"))
    with context.socket(zmq.PUB) as pub:
        pub.setsockopt(zmq.LINGER, 0)
        client_keys(keys, "stranger").apply_client(pub)
        pub.connect(config.det_bind[0])
        pub.send_multipart(batch("radar-1", 0))
        watch.wait(_denied(DOMAIN_DETECTIONS))
        for k in range(1, 20):
            pub.send_multipart(batch("radar-1", k))
        # The positive control: the same endpoint admits a registered key, and what
        # it sends is counted while the stranger's frames still are not.
        known = service_publisher(config.det_bind[0], watch,
                                  curve=client_keys(keys, "gateway-a"), probe_sensor="radar-1")
        known.send(batch("radar-1", 1))
        status = watch.wait(lambda s: s["received"] >= 2)
    assert status["received"] == 2 and status["rejected_total"] == 0


def test_unknown_key_cannot_subscribe_or_ask_for_a_snapshot(secure_service, context, keys,
                                                           status_watch, alert_collector):
    service, config = secure_service
    watch = status_watch(config.publish, client_keys(keys, "ops"))
    for name in ("stranger", "gateway-a"):  # unknown, and a publisher-only key
        client = AlertClient(config.publish, config.snapshot, snapshot_timeout=0.5,
                             timeout=0.5, context=context, curve=client_keys(keys, name))
        with pytest.raises(TimeoutError):
            list(client)
    watch.wait(_denied(DOMAIN_SUBSCRIBERS, 4))
    with context.socket(zmq.SUB) as sub, context.socket(zmq.SUB) as control:
        # The same subscription over the same endpoint, once with a subscriber key:
        # the control must receive what the stranger must not.
        for sock, name in ((sub, "stranger"), (control, "ops")):
            sock.setsockopt(zmq.LINGER, 0)
            client_keys(keys, name).apply_client(sock)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(config.publish)
        denied = watch.wait(_denied(DOMAIN_SUBSCRIBERS, 5))
        got = 0
        while got < 3:  # three status intervals published after the refusal
            assert control.poll(60_000), "the subscriber key got nothing either"
            message = control.recv_multipart()
            if message[0] == b"status" and unpack_map(message[-1])["uptime"] > denied["uptime"]:
                got += 1
        assert not sub.poll(500)
    # The allowed subscriber gets its (empty) snapshot and the status stream.
    ops = alert_collector(AlertClient(config.publish, config.snapshot, context=context,
                                      curve=client_keys(keys, "ops")))
    assert ops.stop() == [] and ops.client.status["secure"] is True


def test_client_in_the_clear_cannot_talk_to_a_secured_service(secure_service, context, keys,
                                                             alert_collector):
    service, config = secure_service
    client = AlertClient(config.publish, config.snapshot, snapshot_timeout=0.5, context=context)
    with pytest.raises(TimeoutError):
        list(client)
    # The positive control: the same endpoints answer a client that has a key.
    ops = alert_collector(AlertClient(config.publish, config.snapshot, context=context,
                                      curve=client_keys(keys, "ops")))
    assert ops.stop() == [] and ops.client.status["secure"] is True
