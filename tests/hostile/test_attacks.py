"""Attacks from a party to the ceasefire, over real sockets, with a legitimate feed alongside.

The legitimate feed is the ``small`` test scenario (every sensor kind, a vehicle that
crosses the zone) published at full speed; an attacker on its own socket sends, in
the middle of it, each attack of issue 12. Each test asserts that every legitimate
batch is accepted, that the crossing is alerted, and that every hostile frame is
counted under a reason.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.alerting import AlertEngine, ZoneSet
from fusion.messages import decode_batch, unpack_map
from fusion.service import Pipeline, ServiceConfig, TrackerService
from sensors.feed import iter_messages
from sensors.scenario import Scenario
from sensors.truth import simulate_truth
from tests.scenarios import SMALL

DEADLINE = 120.0


@pytest.fixture(scope="module")
def legit():
    """The legitimate feed as wire messages, its truth and zones."""
    scenario = Scenario.loads(SMALL, source="small")
    truth = simulate_truth(scenario)
    messages = [(topic, payload) for _, topic, payload in iter_messages(scenario, truth)]
    zones = ZoneSet.from_geojson(scenario.zones_geojson(), scenario.frame)
    return messages, truth, zones


@pytest.fixture
def service(legit, ipc_endpoint):
    _, _, zones = legit
    config = ServiceConfig(
        det_bind=(ipc_endpoint("det"),), publish=ipc_endpoint("pub"),
        snapshot=ipc_endpoint("snap"), reorder_window=0.2, status_interval=0.1,
        max_sensors=64,
    )
    ctx = zmq.Context()
    svc = TrackerService(Pipeline(Tracker(), AlertEngine(zones), config), config, context=ctx)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    assert svc.ready.wait(10)
    yield svc, config, ctx
    svc.stop()
    thread.join(15)
    assert not thread.is_alive()
    ctx.destroy(linger=0)


def connected_pub(ctx: zmq.Context, config: ServiceConfig) -> zmq.Socket:
    """An XPUB on the detection endpoint, returned once the service has subscribed."""
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 0)  # no drops on our side: the feed must arrive whole
    pub.connect(config.det_bind[0])
    assert pub.poll(DEADLINE * 1000), "the service never subscribed"
    assert pub.recv()[:1] == b"\x01"
    return pub


def watch_status(ctx: zmq.Context, config: ServiceConfig) -> zmq.Socket:
    watch = ctx.socket(zmq.SUB)
    watch.setsockopt(zmq.LINGER, 0)
    watch.setsockopt(zmq.SUBSCRIBE, b"status")
    watch.connect(config.publish)
    assert watch.poll(DEADLINE * 1000), "no status from the service"
    watch.recv_multipart()
    return watch


def run_attack(service, legit, attack, spoofed=None) -> tuple[dict, dict[str, int]]:
    """Publish the legitimate feed; ``attack(send, batch)`` fires at its middle.

    Returns the status once every legitimate batch is processed, and the number of
    batches each legitimate sensor sent. ``spoofed`` counts hostile batches sent under
    a legitimate id that the service cannot tell apart (insecure mode) and accepts.
    """
    spoofed = spoofed or {}
    svc, config, ctx = service
    messages, _, _ = legit
    sent: dict[str, int] = {}
    watch = watch_status(ctx, config)
    good, bad = connected_pub(ctx, config), connected_pub(ctx, config)
    try:
        middle = len(messages) // 2
        for k, (topic, payload) in enumerate(messages):
            if k == middle:
                attack(lambda parts: bad.send_multipart(parts), decode_batch(payload))
            good.send_multipart([topic, payload])
            sensor = topic.decode().split(".", 2)[2]
            sent[sensor] = sent.get(sensor, 0) + 1
        end = time.monotonic() + DEADLINE
        accepted: dict[str, int] = {}
        while time.monotonic() < end:
            accepted = svc.pipeline.admission.accepted
            if all(accepted.get(s, 0) >= n + spoofed.get(s, 0) for s, n in sent.items()) and (
                not svc.pipeline.held
            ):
                break
            watch.poll(200)
            while watch.poll(0):
                watch.recv_multipart()
        status = None
        while status is None or status["batches"] < sum(sent.values()) + sum(spoofed.values()):
            assert watch.poll(DEADLINE * 1000)
            status = unpack_map(watch.recv_multipart()[-1])
    finally:
        for sock in (watch, good, bad):
            sock.close(linger=0)
    for sensor, n in sent.items():
        accepted_n = svc.pipeline.admission.accepted.get(sensor, 0)
        assert accepted_n == n + spoofed.get(sensor, 0), (sensor, status)
    return status, sent


def assert_crossing_alerted(svc: TrackerService) -> None:
    kinds = {key.split(".")[0] for key in svc.pipeline.alerts_by_kind}
    assert "incursion" in kinds, svc.pipeline.alerts_by_kind


def lie(sensor: str, kind: str, seq: int, t: float, n: int = 1) -> list[bytes]:
    z = np.zeros((n, 2))
    b = DetectionBatch.build(sensor, kind, seq, t, z, np.broadcast_to(np.eye(2) * 100.0, (n, 2, 2)))
    return [b.topic, encode_batch(b)]


def test_a_sensor_claiming_the_future_blinds_nobody(service, legit):
    def attack(send, now):
        for k in range(50):  # an own sensor id, consistently 3,500 s ahead
            send(lie("liar-1", "radar", k, now.t + 3500.0 + k))

    status, _ = run_attack(service, legit, attack)
    assert status["rejected"].get("future", 0) >= 49, status["rejected"]
    assert_crossing_alerted(service[0])


def test_an_id_flood_and_a_forged_sequence_lock_no_sensor_out(service, legit):
    def attack(send, now):
        for k in range(2000):  # invented ids fill the 64 free slots, then are refused
            send(lie(f"fake-{k}", "ugs", 0, now.t))
        send(lie("radar-1", "radar", 2**63 - 1, now.t))  # a spoofed, huge sequence number

    status, _ = run_attack(service, legit, attack, spoofed={"radar-1": 1})
    assert status["rejected"].get("too_many_sensors", 0) > 0, status["rejected"]
    assert status["seq_resyncs"].get("radar-1", 0) >= 1
    assert_crossing_alerted(service[0])


def test_huge_batches_are_refused_and_tracking_goes_on(service, legit):
    def attack(send, now):
        for k in range(3):  # over the radar budget: decoded, then refused
            send(lie("big-1", "radar", k, now.t, n=10_000))
        for k in range(3):  # over any budget's frame size: dropped by the transport
            send(lie("big-2", "radar", k, now.t, n=200_000))

    status, _ = run_attack(service, legit, attack)
    assert status["rejected"].get("too_many_detections", 0) == 3, status["rejected"]
    assert status["connections"].get("detections.disconnected", 0) >= 1, status
    assert_crossing_alerted(service[0])
