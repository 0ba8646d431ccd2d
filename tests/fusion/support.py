"""Test data and small helpers shared by the fusion tests (fixtures are in conftest.py)."""

from __future__ import annotations

import numpy as np

from fusion import DetectionBatch, encode_batch

# A two-detection drone frame, encoded by schema v1. If this changes, the wire format
# changed: bump SCHEMA_VERSION and keep decoding the old one.
GOLDEN = bytes.fromhex(
    "8da17601a474797065a3646574a673656e736f72a57561762d33a46b696e64a564726f6e65a373657107"
    "a174cb41d954fc40100000a56672616d65a56c6f63616ca16e02a17ac420000000000000f03f00000000"
    "000000400000000000000cc00000000000001040a152c4300000000000001040000000000000f03f0000"
    "000000002240000000000000004000000000000000000000000000000040a3636c73c4020102a4636f6e"
    "66c4080000003f0000803fa8636f766572616765c43000000000000000000000000000000000000000000"
    "0002440000000000000000000000000000000000000000000002440"
)


class FakeClock:
    """A settable wall clock for a socket-free Pipeline."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def crossing_batches(
    n=120, sensor="radar-1", start=(0.0, -1500.0), velocity=(0.0, 20.0), first_seq=0
):
    """A vehicle driving north across the strip at 20 m/s, one detection per second.

    ``first_seq`` leaves room before the batches (for a probe over a socket).
    """
    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        t = float(k)
        z = np.add(start, np.multiply(velocity, t)) + rng.normal(scale=10.0, size=2)
        out.append(DetectionBatch.build(sensor, "radar", first_seq + k, t, [z], np.eye(2) * 100.0))
    return out


def frames(batch):
    return [batch.topic, encode_batch(batch)]
