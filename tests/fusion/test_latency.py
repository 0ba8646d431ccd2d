"""The cumulative latency histogram carried in status."""

from __future__ import annotations

import pytest

from fusion.service.latency import LatencyHistogram


def test_cumulative_counts_sum_and_bounds():
    h = LatencyHistogram((0.001, 0.01, 0.1))
    for v in (0.0005, 0.001, 0.002, 0.05, 3.0):
        h.observe(v)
    st = h.as_status()
    assert st["le"] == [0.001, 0.01, 0.1, "+Inf"]
    assert st["counts"] == [2, 3, 4, 5]  # 0.001 itself falls in le=0.001
    assert st["count"] == 5 and st["sum"] == pytest.approx(3.0535)
    h2 = LatencyHistogram((0.001, 0.01, 0.1))
    h2.load_state_dict(h.state_dict())
    assert h2.as_status() == st


def test_bounds_must_ascend():
    with pytest.raises(ValueError):
        LatencyHistogram((0.1, 0.01))
