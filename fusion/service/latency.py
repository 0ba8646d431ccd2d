"""A cumulative latency histogram for ``status`` (and so for Prometheus).

The status message's ``latency_ms`` holds percentiles of a recent window, which cannot
be added up across time or instances; a monitoring system wants a histogram: counts
per fixed bucket since start, a sum and a count. :class:`LatencyHistogram` keeps one
in a few integers (no per-batch memory) and says it as
``{"le": [...], "counts": [...], "sum": s, "count": n}`` with cumulative counts, the
Prometheus convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Seconds. Receipt-to-alerts latency is ~1 ms on the default scenario; a few hundred
# ms means trouble; the last finite bucket catches a stalled loop.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LatencyHistogram:
    """Counts of observed latencies per bucket, since start.

    Parameters
    ----------
    bounds : sequence of float
        Upper bucket bounds in seconds, ascending; ``+Inf`` is added.
    """

    def __init__(self, bounds: tuple[float, ...] = BUCKETS):
        self.bounds = np.asarray(bounds, dtype=float)
        if np.any(np.diff(self.bounds) <= 0):
            raise ValueError("latency buckets must be strictly ascending")
        self.counts = np.zeros(self.bounds.size + 1, dtype=np.int64)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one latency (seconds)."""
        # side="left": a value equal to a bound belongs to that bucket (le = "<=").
        self.counts[int(np.searchsorted(self.bounds, seconds, side="left"))] += 1
        self.sum += float(seconds)

    def as_status(self) -> dict[str, Any]:
        """Cumulative counts per bound, ``+Inf`` last, with sum and count."""
        cumulative = np.cumsum(self.counts)
        return {
            "le": [*self.bounds.tolist(), "+Inf"],
            "counts": cumulative.tolist(),
            "sum": self.sum,
            "count": int(cumulative[-1]),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "sum": self.sum}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        counts = np.asarray(state.get("counts", []), dtype=np.int64)
        if counts.shape == self.counts.shape:
            self.counts = counts
            self.sum = float(state.get("sum", 0.0))
