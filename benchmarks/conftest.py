"""Shared fixtures for the hot-path benchmarks.

``pytest benchmarks --benchmark-disable`` (run by ``make test``) executes every case
once as a smoke test; there :func:`size` shrinks each problem a hundredfold, so the
1e5 cases still run their code paths but in well under a second. ``soak`` marks the
cases that are slow even so (``make test`` deselects them).
"""

from __future__ import annotations

import pytest

from benchmarks.scenario import steady_tracker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long benchmark, deselected by make test")


@pytest.fixture(scope="session")
def size(request: pytest.FixtureRequest):
    """``size(n)``: the problem size to use for a nominal ``n`` in this run."""
    disabled = bool(request.config.getoption("benchmark_disable"))

    def scaled(n: int) -> int:
        return max(n // 100, 20) if disabled else n

    return scaled


@pytest.fixture(scope="session")
def steady_state():
    """``steady_state(n)``: a cached (tracker, scene) pair after the warm-up scans.

    Cached per ``n`` for the session; kernel benchmarks read it and must not change
    it (tracker benchmarks build their own, since they advance it).
    """
    cache: dict[int, tuple] = {}

    def get(n: int):
        if n not in cache:
            cache[n] = steady_tracker(n, seed=1)
        return cache[n]

    return get
