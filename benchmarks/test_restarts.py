"""20 SIGKILLs at random moments (see benchmarks/restarts.py); run once in CI too."""

from __future__ import annotations

from benchmarks.restarts import main


def test_twenty_sigkills_raise_no_phantom_and_lose_no_incursion(benchmark):
    result = benchmark.pedantic(main, args=(["--kills", "20", "--quiet"],), rounds=1,
                                iterations=1)
    benchmark.group = "restarts"
    assert result["phantom"] == [] and result["duplicate"] == []
    assert result["missed_incursions"] == []
    assert result["reference_opens"] > 0 and result["killed_opens"] > 0
