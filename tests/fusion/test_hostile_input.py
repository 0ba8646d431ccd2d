"""Hostile input on the service's receive path: every reject counted, memory bounded."""

from __future__ import annotations

import tracemalloc

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusion import DetectionBatch, Tracker, encode_batch
from fusion.alerting.engine import AlertEngine
from fusion.service import Pipeline, ServiceConfig
from tests.fusion.support import GOLDEN, FakeClock, crossing_batches, frames

FIELDS = ["v", "type", "sensor", "kind", "seq", "t", "n", "z", "R", "cls", "conf", "coverage"]
extreme = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 2**32, 10**9, -1]),
    st.binary(max_size=64),
    st.text(max_size=16),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


def frames_strategy():
    golden = msgpack.unpackb(GOLDEN, raw=False)

    def mutated(field, value):
        obj = dict(golden)
        obj[field] = value
        try:
            return msgpack.packb(obj, use_bin_type=True)
        except (OverflowError, ValueError, TypeError):
            return b"\xc1"

    payloads = st.one_of(
        st.binary(max_size=256),
        st.builds(lambda cut: GOLDEN[:cut], st.integers(0, len(GOLDEN))),
        st.builds(mutated, st.sampled_from(FIELDS), extreme),
        # huge declared sizes: a msgpack bin/array header promising more than follows
        st.builds(lambda n: b"\xc6" + n.to_bytes(4, "big") + b"x", st.integers(0, 2**32 - 1)),
        st.builds(lambda n: b"\xdd" + n.to_bytes(4, "big"), st.integers(0, 2**32 - 1)),
    )
    topics = st.one_of(st.just(b"det.drone.uav-3"), st.binary(max_size=32))
    return st.one_of(
        st.builds(lambda t, p: [t, p], topics, payloads),
        st.lists(st.binary(max_size=16), max_size=4),  # wrong frame counts
    )


def make_pipeline(zones):
    config = ServiceConfig(det_bind=("inproc://x",), reorder_window=0.0, max_sensors=64)
    return Pipeline(Tracker(), AlertEngine(zones), config, clock=FakeClock())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=frames_strategy())
def test_receive_never_raises_and_counts_every_reject(strip_zones, frames):
    pipe = make_pipeline(strip_zones)
    accepted = pipe.receive(frames)
    pipe.release(flush=True)
    status = pipe.status()
    assert status["received"] + status["rejected_total"] == 1
    assert accepted == (status["received"] == 1)
    assert status["rejected"].get("internal", 0) == 0


def test_memory_stays_bounded_over_a_large_fuzz_run(strip_zones):
    rng = np.random.default_rng(7)
    pipe = make_pipeline(strip_zones)
    golden = bytearray(GOLDEN)

    def junk(k):
        kind = k % 5
        if kind == 0:
            return [b"det.x", rng.bytes(int(rng.integers(0, 300)))]
        if kind == 1:
            data = bytearray(golden)
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
            return [b"det.drone.uav-3", bytes(data)]
        if kind == 2:
            return [b"det.drone.uav-3", GOLDEN[: int(rng.integers(len(GOLDEN)))]]
        if kind == 3:  # well-formed batches from ever new sensor ids
            b = DetectionBatch.build(f"s-{k}", "radar", 0, 1.7e9, [[0.0, 0.0]], np.eye(2))
            return [b.topic, encode_batch(b)]
        return [b"\xc6\xff\xff\xff\xff"]

    def run(n, start):
        for k in range(start, start + n):
            pipe.receive(junk(k))
            if k % 64 == 0:
                pipe.release(flush=True)
        pipe.release(flush=True)

    run(3000, 0)  # warm up: caches, the per-sensor tables fill to max_sensors
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    run(12000, 3000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    status = pipe.status()
    assert status["received"] + status["rejected_total"] == 15000
    assert status["rejected"]["too_many_sensors"] > 0 and status["sensors_seen"] == 64
    assert status["rejected"].get("internal", 0) == 0
    assert growth < 2_000_000, f"grew by {growth} bytes"


def test_future_old_and_replayed_batches_are_rejected_over_the_socket(
    running_service, status_watch, service_publisher
):
    service, config, _ = running_service
    watch = status_watch(config.publish)
    good = [
        DetectionBatch.build(b.sensor_id, b.sensor_kind, b.seq, b.t + 400.0, b.z, b.R)
        for b in crossing_batches(5, first_seq=1)
    ]
    pub = service_publisher(config.det_bind[0], watch, probe_sensor="radar-1", probe_t=400.0)
    base = pub.baseline
    for b in good:
        pub.send_batch(b)
    hostile = [
        DetectionBatch.build("radar-1", "radar", 10, 1e7, [[0.0, 0.0]], np.eye(2)),  # future
        DetectionBatch.build("radar-1", "radar", 11, 50.0, [[0.0, 0.0]], np.eye(2)),  # too old
        good[2],  # replayed sequence number
    ]
    for b in hostile:
        pub.send(frames(b))
    status = watch.wait(
        lambda s: s["rejected_total"] >= base["rejected_total"] + 3
        and s["batches"] >= base["batches"] + 5
    )
    assert status["rejected"] == {"future": 1, "too_old": 1, "duplicate": 1}, status
    assert status["batches"] == base["batches"] + 5  # the good ones only
