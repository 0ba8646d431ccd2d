"""Truth probes: a target that headed for a zone and turned back, from the truth alone.

The ``probe`` alert follows a predicted incursion that cleared without an entry
(:mod:`fusion.alerting.kinds`). Its truth is the same story told by the ground truth:

* the target is *heading in* at a step when it is outside the zone and its true
  straight-line path over ``horizon`` seconds (the predicted-incursion rule's) reaches
  the zone;
* heading-in steps less than ``horizon`` apart make one approach, from its first
  heading-in step ``a`` to its last ``b``;
* the approach is a probe when the target does not enter the zone before
  ``b + horizon`` and came within ``max_distance`` metres of it in ``[a, b + horizon]``
  (the probe rule's distance). An approach that ends in an entry is an incursion's, and
  is scored there.

A probe alert matches when it opens in ``[a - tolerance, b + horizon + tolerance]``:
the alert comes when the warning clears, which is after the target stopped heading in
and before its straight line could have reached the zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from replay.scoring.metrics import TruthEvent, by_target

__all__ = ["probe_events"]


def _heading_in(geom: Any, xv: np.ndarray, horizon: float) -> np.ndarray:
    """Whether each truth state (M, 4) outside ``geom`` is on a path into it within
    ``horizon`` seconds, shape (M,) bool."""
    ends = xv[:, :2] + xv[:, 2:4] * horizon
    # Only states whose whole reach could touch the zone get the exact segment test.
    reach = np.hypot(xv[:, 2], xv[:, 3]) * horizon
    dist = shapely.distance(geom, shapely.points(xv[:, :2]))
    cand = np.flatnonzero((dist > 0) & (dist <= reach))
    out = np.zeros(xv.shape[0], bool)
    if cand.size:
        segments = shapely.linestrings(
            np.stack([xv[cand, :2], ends[cand]], axis=1)  # (C, 2 points, 2)
        )
        out[cand] = shapely.intersects(geom, segments)
    return out


def probe_events(
    times: np.ndarray,
    ids: Sequence[np.ndarray],
    states: Sequence[np.ndarray],
    zones: Sequence[tuple[str, Any]],
    *,
    horizon: float,
    max_distance: float,
    tolerance: float,
) -> list[TruthEvent]:
    """Truth probes, by the probe rule's own definition applied to the truth.

    Parameters
    ----------
    times : ndarray, shape (T,)
    ids : sequence of ndarray, each shape (N_t,), int
    states : sequence of ndarray, each shape (N_t, 4)
        East, north (m), v_east, v_north (m/s).
    zones : sequence of (name, shapely geometry)
    horizon : float
        Seconds: the predicted-incursion rule's look-ahead.
    max_distance : float
        Metres: the probe rule's closest-approach limit.
    tolerance : float
        Seconds of slack on both ends of the window.

    Returns
    -------
    list of TruthEvent
        ``t_ref`` is the time of closest approach; ``info`` holds the approach's
        ``t_start``, ``t_end`` and ``closest`` (metres).
    """
    if not len(times):
        return []
    t_all, id_all, xv_all, runs = by_target(times, ids, states, 4)
    out: list[TruthEvent] = []
    for name, geom in zones:
        dist = shapely.distance(geom, shapely.points(xv_all[:, :2]))
        heading = _heading_in(geom, xv_all, horizon)
        for lo, hi in runs:
            steps = lo + np.flatnonzero(heading[lo:hi])
            if not steps.size:
                continue
            t_in = t_all[steps]
            # Heading-in steps further apart than the horizon are separate approaches.
            breaks = np.flatnonzero(np.diff(t_in) > horizon) + 1
            for first, last in zip(np.r_[0, breaks], np.r_[breaks, t_in.size] - 1, strict=True):
                a, b = float(t_in[first]), float(t_in[last])
                span = np.flatnonzero((t_all[lo:hi] >= a) & (t_all[lo:hi] <= b + horizon)) + lo
                if (dist[span] == 0).any():
                    continue  # it went in: an incursion's approach
                k = span[np.argmin(dist[span])]
                if dist[k] > max_distance:
                    continue
                info = {"t_start": a, "t_end": b, "closest": float(dist[k])}
                out.append(TruthEvent(int(id_all[lo]), name, float(t_all[k]), a - tolerance,
                                      b + horizon + tolerance, info))
    return out
