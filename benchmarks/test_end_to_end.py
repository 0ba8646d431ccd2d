"""End-to-end latency through real processes and sockets (see benchmarks/end_to_end.py).

Under ``--benchmark-disable`` (``make test``) it is a 3-second smoke run at 1e3
detections/s; ``python -m benchmarks.end_to_end`` gives the full figures.
"""

from __future__ import annotations

import pytest

from benchmarks.end_to_end import run_load


@pytest.mark.parametrize("rate", [1_000, 10_000])
def test_end_to_end_latency(benchmark, request, tmp_path, rate):
    disabled = bool(request.config.getoption("benchmark_disable"))
    if disabled and rate > 1_000:
        pytest.skip("smoke run covers the lowest rate only")
    duration = 3.0 if disabled else 20.0
    result = benchmark.pedantic(run_load, args=(rate, duration, tmp_path), rounds=1, iterations=1)
    benchmark.group = "end to end"
    benchmark.extra_info.update(
        rate=rate,
        latency_ms=result.latency_ms,
        stage_ms=result.stage_ms,
        sent=result.sent,
        processed=result.processed,
        alerts=result.alerts,
    )
    # Correctness, not speed: every batch sent was processed and nothing was rejected.
    assert result.processed == result.sent and result.rejected == 0
