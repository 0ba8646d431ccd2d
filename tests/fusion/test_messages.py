"""The wire schema: round trip, pinned bytes, and hostile input."""

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.messages import (
    DetectionBatch,
    WireError,
    decode_batch,
    encode_batch,
    pack_map,
)
from tests.fusion.support import GOLDEN  # the pinned bytes, shared with the fuzz tests


def golden_batch():
    return DetectionBatch.build(
        "uav-3",
        "drone",
        7,
        1700000000.25,
        [[1.0, 2.0], [-3.5, 4.0]],
        [[[4.0, 1.0], [1.0, 9.0]], [[2.0, 0.0], [0.0, 2.0]]],
        classes=[1, 2],
        conf=[0.5, 1.0],
        coverage=[[0, 0], [10, 0], [0, 10]],
    )


def test_golden_bytes():
    assert encode_batch(golden_batch()) == GOLDEN
    decoded = decode_batch(GOLDEN)
    assert decoded.sensor_id == "uav-3" and decoded.sensor_kind == "drone"
    assert decoded.seq == 7 and decoded.t == 1700000000.25
    np.testing.assert_array_equal(decoded.z, [[1.0, 2.0], [-3.5, 4.0]])
    np.testing.assert_array_equal(decoded.R[0], [[4.0, 1.0], [1.0, 9.0]])
    np.testing.assert_array_equal(decoded.cls, [1, 2])
    np.testing.assert_array_equal(decoded.coverage, [[0, 0], [10, 0], [0, 10]])
    assert decoded.topic == b"det.drone.uav-3"


def test_round_trip_without_optional_fields():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 2)) * 1e4
    batch = DetectionBatch.build("radar-1", "radar", 0, 12.5, z, np.eye(2) * 400.0)
    back = decode_batch(encode_batch(batch))
    np.testing.assert_array_equal(back.z, z)
    np.testing.assert_array_equal(back.R, np.broadcast_to(np.eye(2) * 400.0, (500, 2, 2)))
    assert back.cls is None and back.conf is None and back.coverage is None


def test_empty_batch_round_trips():
    batch = DetectionBatch.build("ugs-9", "ugs", 3, 1.0, np.empty((0, 2)), np.empty((0, 2, 2)))
    assert len(decode_batch(encode_batch(batch))) == 0


def mutate(field, value):
    obj = msgpack.unpackb(GOLDEN, raw=False)
    if value is KeyError:
        del obj[field]
    else:
        obj[field] = value
    return msgpack.packb(obj, use_bin_type=True)


NAN_Z = np.array([[np.nan, 0.0], [1.0, 2.0]]).tobytes()
NOT_PD = np.array([[4.0, 5.0, 4.0], [2.0, 0.0, 2.0]]).tobytes()  # xy^2 > xx*yy


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xc1garbage", "msgpack"),
        (msgpack.packb([1, 2, 3]), "msgpack"),
        (mutate("v", 2), "version"),
        (mutate("v", KeyError), "version"),
        (mutate("type", "alert"), "schema"),
        (mutate("n", 3), "shape"),
        (mutate("n", 10**9), "size"),
        (mutate("z", KeyError), "schema"),
        (mutate("z", NAN_Z), "nonfinite"),
        (mutate("R", NOT_PD), "covariance"),
        (mutate("t", float("inf")), "nonfinite"),
        (mutate("t", "yesterday"), "schema"),
        (mutate("kind", "submarine"), "sensor"),
        (mutate("sensor", "bad id with spaces"), "sensor"),
        (mutate("seq", -1), "schema"),
        (mutate("cls", b"\x01\x09"), "schema"),
        (mutate("conf", np.array([0.5, 2.0], "<f4").tobytes()), "nonfinite"),
        (mutate("coverage", b"\x00" * 32), "shape"),
    ],
)
def test_bad_payloads_raise_wire_error_with_reason(payload, reason):
    with pytest.raises(WireError) as info:
        decode_batch(payload)
    assert info.value.reason == reason
    assert str(info.value)  # a message for a person


def test_build_rejects_non_positive_definite_covariance():
    with pytest.raises(WireError, match="positive-definite"):
        DetectionBatch.build("r", "radar", 0, 0.0, [[0.0, 0.0]], [[1.0, 2.0], [2.0, 1.0]])


def test_other_messages_carry_the_version():
    assert msgpack.unpackb(pack_map({"type": "status"}))["v"] == 1


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_raise_wire_error(data):
    try:
        decode_batch(data)
    except WireError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    position=st.integers(0, len(GOLDEN) - 1),
    byte=st.integers(0, 255),
    cut=st.integers(0, len(GOLDEN)),
)
def test_mutated_golden_bytes_only_ever_raise_wire_error(position, byte, cut):
    data = bytearray(GOLDEN)
    data[position] = byte
    for candidate in (bytes(data), bytes(data[:cut])):
        try:
            batch = decode_batch(candidate)
        except WireError:
            continue
        assert np.isfinite(batch.z).all() and np.isfinite(batch.R).all()


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=64),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(
        [
            "v",
            "type",
            "sensor",
            "kind",
            "seq",
            "t",
            "n",
            "z",
            "R",
            "cls",
            "conf",
            "coverage",
            "frame",
        ]
    ),
    value=values,
)
def test_any_field_with_any_value_only_ever_raises_wire_error(field, value):
    try:
        decode_batch(mutate(field, value))
    except WireError:
        pass
