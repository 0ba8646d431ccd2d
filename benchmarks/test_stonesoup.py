"""Stone Soup's GNN tracker on the same scans (see benchmarks/stonesoup_compare.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("stonesoup")

from benchmarks.stonesoup_compare import compare  # noqa: E402


def test_stonesoup_comparison(benchmark, size):
    n = size(300)
    result = benchmark.pedantic(compare, args=(n,), rounds=1, iterations=1)
    benchmark.group = "stone soup"
    benchmark.extra_info.update(result)
    # Both trackers hold a track for (nearly) every target once warmed up.
    assert result["tracks_bufferzone"] >= 0.9 * n
    assert result["tracks_stonesoup"] >= 0.9 * n
