"""Clutter density learnt per sensor, for sensors that do not declare their own.

A batch may carry its sensor's clutter density (``DetectionBatch.clutter_density``);
most simulated and real sensors do not. A wrong guess is costly either way: too low and
every pair of false alarms looks like a target (false tracks), too high and real targets
wait. So for a sensor that does not declare it, the tracker counts the detections that
no track took (nearly all clutter once the picture has settled) over the area the
sensor looked at, with exponential forgetting, and uses the larger of that estimate and
the configured default for the sensor kind.
"""

from __future__ import annotations

import numpy as np

from fusion.tracking.coverage import polygon_area

# Forgetting factor per batch: about the last 50 batches count.
FORGET = 0.98
# A batch without coverage gives its area as its detections' bounding box, which means
# something only with enough detections in it.
MIN_DETECTIONS_FOR_AREA = 10
# Bound on remembered sensors (each is two floats); the oldest is dropped beyond it.
MAX_SENSORS = 4096


def footprint_area(z: np.ndarray, coverage: np.ndarray | None) -> float:
    """Area a batch looked at, m^2: its coverage polygon's, else its detections' bounding
    box (with at least ``MIN_DETECTIONS_FOR_AREA`` of them), else NaN (unknown)."""
    if coverage is not None:
        return polygon_area(coverage)
    if z.shape[0] >= MIN_DETECTIONS_FOR_AREA:
        east, north = z[:, 0], z[:, 1]  # four 1-d reductions beat two along axis 0
        return float((east.max() - east.min()) * (north.max() - north.min()))
    return float("nan")


class ClutterEstimator:
    """Per-sensor running estimate of false detections per square metre per batch."""

    def __init__(self) -> None:
        self._counts: dict[str, list[float]] = {}  # sensor -> [unassigned, area]

    def observe(self, sensor_id: str, unassigned: int, area: float) -> None:
        """Book one batch: ``unassigned`` of its detections went to no track, over a
        footprint of ``area`` m^2 (:func:`footprint_area`; NaN when unknown)."""
        if not area > 0:  # NaN (unknown) too
            return
        counts = self._counts.pop(sensor_id, [0.0, 0.0])
        counts[0] = FORGET * counts[0] + unassigned
        counts[1] = FORGET * counts[1] + area
        self._counts[sensor_id] = counts  # re-inserted: the dict keeps recent sensors last
        if len(self._counts) > MAX_SENSORS:
            del self._counts[next(iter(self._counts))]

    def density(self, sensor_id: str) -> float:
        """The estimate for a sensor, 0 when it has not been seen."""
        counts = self._counts.get(sensor_id)
        return counts[0] / counts[1] if counts else 0.0
