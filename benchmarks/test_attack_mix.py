"""The service under the attack mix (see benchmarks/attack_mix.py).

Under ``--benchmark-disable`` (``make test``) it is a smoke run at 30x real time;
``python -m benchmarks.attack_mix`` gives the figures the README quotes.
"""

from __future__ import annotations

from benchmarks.attack_mix import one_run


def test_attack_mix(benchmark, request, tmp_path):
    disabled = bool(request.config.getoption("benchmark_disable"))
    speed = 30.0 if disabled else 10.0
    attacked = benchmark.pedantic(one_run, args=(True, speed, tmp_path), rounds=1, iterations=1)
    benchmark.group = "attack mix"
    benchmark.extra_info.update(latency_ms=attacked["latency_ms"],
                                peak_rss_mb=attacked["peak_rss_mb"], stop_s=attacked["stop_s"])
    # Correctness, not speed: every legitimate batch processed, the attacks counted.
    assert attacked["batches"] >= attacked["legit_batches"]
    assert attacked["rejected"].get("future", 0) > 0
    assert attacked["requests"].get("rate_limited", 0) > 0
