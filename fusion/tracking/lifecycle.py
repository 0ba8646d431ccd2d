"""Track life: record each scan's hits and misses, confirm, and choose the tracks to delete.

Two policies (``TrackerConfig.lifecycle``): the track score with its SPRT thresholds
(``fusion.tracking.existence``, the default) and M-of-N hit counting. Both keep the
hit history and the run of misses, which checkpoints and tests read. Everything works
on rows of the :class:`~fusion.tracking.track_table.TrackTable`, vectorised.
"""

from __future__ import annotations

import numpy as np

from fusion.tracking import existence
from fusion.tracking.config import TrackerConfig
from fusion.tracking.coverage import depth_inside
from fusion.tracking.gating import GatedPairs
from fusion.tracking.track_table import CONFIRMED, TENTATIVE, TrackTable


def score_changes(
    pd: float,
    clutter: float,
    gate_probability: float,
    pairs: GatedPairs,
    track: np.ndarray,
    detection: np.ndarray,
    z_pred: np.ndarray,
    P_pos: np.ndarray,
    coverage: np.ndarray | None,
) -> np.ndarray:
    """Score change of every visible track (``fusion.tracking.existence``).

    Parameters
    ----------
    pd, clutter : float
        The batch's detection probability and clutter density (per m^2).
    pairs : GatedPairs
        The gated pairs, sorted by (track, detection); ``track``, ``detection`` (A,)
        the assigned ones among them.
    z_pred : ndarray, shape (V, 2)
    P_pos : ndarray, shape (V, 2, 2)
        Predicted position and its covariance of each visible track.
    coverage : ndarray, shape (K, 2), optional
        The batch's footprint; a track near its edge may have been just outside.

    Returns
    -------
    delta : ndarray, shape (V,)
    """
    delta = np.empty(z_pred.shape[0])
    if track.size == len(pairs):
        # Every gated pair was assigned (a small batch, usually): the assigned pairs
        # are all of them, in the same (track) order, so no search is needed.
        delta[track] = existence.hit_score(pd, clutter, pairs.d2, pairs.log_det_S)
    else:
        m = int(detection.max()) + 1 if detection.size else 1
        m = max(m, int(pairs.detection.max()) + 1 if len(pairs) else 1)
        k = np.searchsorted(pairs.track * m + pairs.detection, track * m + detection)
        delta[track] = existence.hit_score(pd, clutter, pairs.d2[k], pairs.log_det_S[k])
    if track.size == z_pred.shape[0]:
        return delta  # every visible track took a detection
    missed = np.ones(z_pred.shape[0], dtype=bool)
    missed[track] = False
    p_cover: float | np.ndarray = 1.0
    if coverage is not None and missed.any():
        idx = np.flatnonzero(missed)
        sigma = np.sqrt(np.maximum(P_pos[idx, 0, 0], P_pos[idx, 1, 1]))
        p_cover = existence.coverage_probability(depth_inside(z_pred[idx], coverage), sigma)
    delta[missed] = existence.miss_score(pd, gate_probability, p_cover)
    return delta


def record_scan(
    tracks: TrackTable,
    rows: np.ndarray,
    sel: slice | np.ndarray,
    hit: np.ndarray,
    delta: np.ndarray,
    cfg: TrackerConfig,
    thresholds: existence.Thresholds,
    confirm_at: float,
) -> np.ndarray:
    """Book one scan of the visible tracks and promote those that qualify.

    Parameters
    ----------
    tracks : TrackTable
    rows : ndarray, shape (V,), intp
        The visible tracks; ``sel`` selects the same rows (a slice when all are).
    hit : ndarray, shape (V,), bool
        Whether each took a detection.
    delta : ndarray, shape (V,)
        Score change of each (hit or miss, see ``fusion.tracking.existence``).
    confirm_at : float
        This batch's confirmation threshold (``existence.confirm_threshold``).

    Returns
    -------
    promoted : ndarray, intp
        Rows confirmed by this scan.
    """
    window = np.uint32((1 << cfg.confirm_n) - 1)
    tracks.history[sel] = ((tracks.history[sel] << np.uint32(1)) | hit) & window
    tracks.scans[sel] += 1
    tracks.misses_in_row[sel] = np.where(hit, 0, tracks.misses_in_row[sel] + 1)
    status = tracks.status[sel]
    score = tracks.score[sel] + delta
    # A confirmed track's score stops at the ceiling, so that it can be deleted after a
    # few misses however long it has been seen.
    tracks.score[sel] = np.where(status == CONFIRMED, np.minimum(score, thresholds.ceiling), score)
    tentative = rows[status == TENTATIVE]
    if cfg.lifecycle == "score":
        promote = tentative[tracks.score[tentative] >= confirm_at]
    else:
        promote = tentative[np.bitwise_count(tracks.history[tentative]) >= cfg.confirm_m]
    tracks.status[promote] = CONFIRMED
    tracks.score[promote] = np.minimum(tracks.score[promote], thresholds.ceiling)
    return promote


def failed(
    tracks: TrackTable, rows: np.ndarray, cfg: TrackerConfig, thresholds: existence.Thresholds,
    now: float,
) -> dict[str, np.ndarray]:
    """Which of ``rows`` (just seen by a sensor) failed their existence test.

    Returns masks over ``rows`` per reason: ``unconfirmed`` (a candidate that can no
    longer be confirmed) and ``misses`` (a confirmed track the sensors stopped seeing).
    """
    tentative = tracks.status[rows] == TENTATIVE
    silent = now - tracks.t_hit[rows]
    if cfg.lifecycle == "score":
        score = tracks.score[rows]
        # The time guard is for sensors whose Pd is guessed, not declared: several of
        # them over one place can pile up misses within a second.
        return {
            "unconfirmed": tentative & (score <= thresholds.drop),
            "misses": ~tentative & (score < thresholds.confirm) & (silent >= cfg.min_miss_time),
        }
    misses_in_window = np.minimum(tracks.scans[rows], cfg.confirm_n) - np.bitwise_count(
        tracks.history[rows]
    )
    return {
        "unconfirmed": tentative & (misses_in_window > cfg.confirm_n - cfg.confirm_m),
        "misses": ~tentative
        & (tracks.misses_in_row[rows] >= cfg.max_misses)
        & (silent >= cfg.min_miss_time),
    }


def stale(tracks: TrackTable, cfg: TrackerConfig, accel_var: float, now: float) -> dict:
    """Masks over every live track: coasted too long, or too uncertain by ``now``.

    The position variance is predicted to ``now`` without touching the table, since a
    track out of every sensor's coverage is not predicted by any batch:
    ``P_pp + 2 dt P_pv + dt^2 P_vv + q dt^4 / 4`` per axis.
    """
    tentative = tracks.status == TENTATIVE
    silent = now - tracks.t_hit
    dt = np.maximum(now - tracks.t, 0.0)
    P = tracks.P
    moving = dt != 0.0
    if moving.any():
        # q dt^4 / 4 once for both axes, and only where dt is not zero: the power costs
        # more than the rest of the sweep, and is exactly 0 at dt = 0.
        noise = np.zeros(dt.shape[0])
        noise[moving] = accel_var * dt[moving] ** 4 / 4.0
        var = [P[i, i] + 2.0 * dt * P[i, i + 2] + dt**2 * P[i + 2, i + 2] + noise
               for i in (0, 1)]
    else:
        # Every track is at now (a full scan just predicted them all): the variances as
        # they are, the same values without the passes that add zeros.
        var = [P[0, 0], P[1, 1]]
    return {
        "tentative_coast": tentative & (silent > cfg.tentative_max_coast_time),
        "coast": ~tentative & (silent > cfg.max_coast_time),
        "uncertain": np.maximum(*var) > cfg.max_position_std**2,
    }
