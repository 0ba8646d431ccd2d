"""Bounds on the work one sensor can cause: detections, covariances, new ids.

Per sensor kind, a batch may hold at most ``budgets[kind][0]`` detections
(``too_many_detections``), and a sensor may send at most ``budgets[kind][1]``
detections per second of its own measurement time, with one full batch as burst
(``over_budget``, counted per sensor; the batch's sequence number is used up, so
the drop is not also counted as a gap). Measurement time cannot run ahead of the
reference, so a sensor cannot buy itself budget, and a replay at any speed keeps
the budget it had live. The tracker's work per batch is bounded with it.

Measurement covariances whose largest eigenvalue exceeds ``max_variance`` are
refused (``covariance_too_large``): a 1e155 m^2 covariance passes every positive-
definiteness test and then wrecks gating and the alert probabilities.

Probation: an unconfigured id's first ``PROBATION_BATCHES`` batches draw on one
allowance of ``probation_rate`` batches per second of the admission's reference time
(which no single sensor moves; live it runs with the wall clock, in a replay with the
feed) shared by all such ids (``probation``), so a flood of invented ids costs the
tracker that much at most, and sensors that are configured or past probation never
notice it.

Per-sensor state lives only for ids in the admission table (it calls :meth:`forget`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import numpy as np

from fusion.messages import DetectionBatch, WireError

# Detections per batch and per second of measurement time, per sensor kind: several
# times what the simulated sensor models produce in a busy scene (a radar sector holds
# a few hundred plots a scan, a satellite pass image a few thousand).
DEFAULT_BUDGETS: dict[str, tuple[float, float]] = {
    "radar": (5_000.0, 10_000.0),
    "drone": (2_000.0, 20_000.0),
    "satellite": (50_000.0, 50_000.0),
    "ugs": (200.0, 1_000.0),
}
# Batches an unconfigured id sends before it stops drawing on the shared allowance: only
# its first, so a sensor once accepted is never refused for what a flood took.
PROBATION_BATCHES = 1


class Budgets:
    """The work bounds of :mod:`fusion.service.admission`; see the module docstring.

    Parameters
    ----------
    per_kind : mapping of str to (float, float), optional
        Per sensor kind: detections per batch, detections per second of measurement
        time. Kinds not given keep :data:`DEFAULT_BUDGETS`.
    max_variance : float
        Largest eigenvalue a measurement covariance may have, m^2 (1e8: a 10 km std).
    probation_rate : float
        Batches per second of reference time shared by all ids on probation, with five
        seconds' worth as burst.
    """

    def __init__(
        self,
        per_kind: Mapping[str, tuple[float, float]] | None = None,
        max_variance: float = 1e8,
        probation_rate: float = 20.0,
    ) -> None:
        self.per_kind = {**DEFAULT_BUDGETS, **(per_kind or {})}
        self.max_variance = max_variance
        self.probation_rate = probation_rate
        # The shared allowance of ids on probation: (batches left, clock time of that).
        self._probation = (5.0 * probation_rate, math.nan)
        # Per sensor: detections it may still send, and the measurement time of that count.
        self.tokens: dict[str, tuple[float, float]] = {}
        self.drops: Counter[str] = Counter()

    def check_batch(self, batch: DetectionBatch) -> None:
        """Stateless checks: the batch's size for its kind and its covariances."""
        per_batch, _ = self.per_kind.get(batch.sensor_kind, (0.0, 0.0))
        if len(batch) > per_batch:
            raise WireError(
                "too_many_detections",
                f"sensor {batch.sensor_id}: {len(batch)} detections in one batch, more than "
                f"the {per_batch:g} a {batch.sensor_kind} may send",
            )
        if not len(batch):
            return
        R = batch.R
        half_trace = 0.5 * (R[:, 0, 0] + R[:, 1, 1])
        half_gap = 0.5 * (R[:, 0, 0] - R[:, 1, 1])
        largest = half_trace + np.hypot(half_gap, R[:, 0, 1])  # eigenvalue of a 2x2 SPD
        worst = float(largest.max())
        if not worst <= self.max_variance:
            raise WireError(
                "covariance_too_large",
                f"sensor {batch.sensor_id}: a measurement variance of {worst:.3g} m^2 "
                f"exceeds {self.max_variance:.3g} m^2",
            )

    def draw_probation(self, sensor: str, accepted: int, now: float | None) -> None:
        """Charge one batch of an id with ``accepted`` batches so far to the allowance.

        ``now`` is the reference time (None before there is one: nothing refills).
        """
        if accepted >= PROBATION_BATCHES:
            return
        burst = 5.0 * self.probation_rate
        left, at = self._probation
        if now is None:
            now = at
        elif not math.isnan(at):
            left = min(burst, left + self.probation_rate * max(now - at, 0.0))
        if left < 1.0:
            self._probation = (left, now)
            raise WireError(
                "probation",
                f"sensor {sensor}: new ids share {self.probation_rate:g} batches a second, "
                "all taken",
            )
        self._probation = (left - 1.0, now)

    def spend(self, batch: DetectionBatch) -> None:
        """Take the batch's detections from its sensor's budget (a token bucket in the
        sensor's own measurement time), or raise ``over_budget``."""
        sensor = batch.sensor_id
        burst, rate = self.per_kind.get(batch.sensor_kind, (0.0, 0.0))
        left, at = self.tokens.get(sensor, (burst, batch.t))
        left = min(burst, left + rate * max(batch.t - at, 0.0))
        if len(batch) > left:
            if sensor in self.tokens:  # per-sensor counts only for ids in the table
                self.drops[sensor] += 1
            raise WireError(
                "over_budget",
                f"sensor {sensor}: {len(batch)} detections exceed its budget of {rate:g} "
                f"per second ({left:.0f} left)",
            )
        self.tokens[sensor] = (left - len(batch), max(batch.t, at))

    def forget(self, sensor: str) -> None:
        self.tokens.pop(sensor, None)
        self.drops.pop(sensor, None)

