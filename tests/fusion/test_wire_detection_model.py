"""The optional per-batch detection model on the wire: ``pd`` and ``clutter``."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from fusion.messages import DetectionBatch, WireError, decode_batch, encode_batch


def make(**kw):
    return DetectionBatch.build("radar-1", "radar", 3, 10.0, [[1.0, 2.0]], np.eye(2) * 4.0, **kw)


def test_round_trip_keeps_pd_and_clutter():
    got = decode_batch(encode_batch(make(pd=0.85, clutter_density=2e-8)))
    assert got.pd == 0.85 and got.clutter_density == 2e-8


def test_a_batch_without_them_encodes_as_before_and_decodes_to_none():
    payload = encode_batch(make())
    assert {"pd", "clutter"}.isdisjoint(msgpack.unpackb(payload))
    got = decode_batch(payload)
    assert got.pd is None and got.clutter_density is None


@pytest.mark.parametrize(
    "field, value",
    [("pd", 0.0), ("pd", 1.5), ("pd", float("nan")), ("pd", "high"), ("clutter", -1.0),
     ("clutter", float("inf")), ("pd", True)],
)
def test_bad_values_are_refused_with_a_reason(field, value):
    obj = msgpack.unpackb(encode_batch(make()))
    obj[field] = value
    with pytest.raises(WireError) as err:
        decode_batch(msgpack.packb(obj, use_bin_type=True))
    assert err.value.reason == "schema"
