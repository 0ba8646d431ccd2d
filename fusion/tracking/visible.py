"""Steps 2 and 5 of a batch (``fusion.tracking.tracker``): predict the tracks the batch
could have seen to its time, and update those that took a detection.

A track whose state is newer than the batch (an out-of-sequence batch) is retrodicted
to it, and updated with the one-lag algorithm of ``fusion.tracking.kalman``. When no
visible track is late (nearly always), the prediction is not written to the table: it
is gated against in hand, and once the assignment is known every visible row is
written once, updated or predicted (:func:`fusion.tracking.motion.update_predicted`).
Only the position block of the combined covariance is formed before that, for gating.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from fusion.messages import DetectionBatch
from fusion.tracking import kalman, motion
from fusion.tracking.track_table import TrackTable

# The retrodiction of the late tracks, batch-first: x_b (L, 4), P_b (L, 4, 4), P_xb.
Retrodicted = tuple[np.ndarray, np.ndarray, np.ndarray]


def predict_visible(
    tracks: TrackTable, rows: np.ndarray, sel: slice | np.ndarray, late: np.ndarray, t: float,
    model: motion.MotionModel, accel_var: float,
) -> tuple[np.ndarray, np.ndarray, Retrodicted | None, motion.Prediction | None]:
    """Predict the visible tracks to ``t``, or retrodict late ones to it (not kept).

    Parameters
    ----------
    tracks : TrackTable
    rows : ndarray, shape (V,), intp
        The visible tracks; ``sel`` selects the same rows (a slice when all are).
    late : ndarray, shape (V,), bool
        Whether each one's state is newer than ``t``.
    t : float
    model : MotionModel
    accel_var : float
        Process noise of the retrodiction, (m/s^2)^2.

    Returns
    -------
    z_pred : ndarray, shape (V, 2)
    P_pos : ndarray, shape (V, 2, 2)
        Predicted measurement and position covariance of every visible track (views of
        batch-last arrays).
    oosm : tuple of ndarray or None
        The retrodiction ``(x_b, P_b, P_xb)`` of the late tracks, None when none is.
    pending : Prediction or None
        The prediction, not yet in the table (:func:`update_visible` writes it); None
        when a track was late and the on-time ones were predicted in the table.
    """
    if not late.any():
        pending = motion.predict_modes(tracks, sel, t, model)
        tracks.t[sel] = t
        return pending.x[:2].T, pending.P_pos.transpose(2, 0, 1), None, pending
    # Out-of-sequence batch (rare): the general path.
    motion.predict_rows(tracks, rows[~late], t, model)
    back = rows[late]
    x_b, P_b, P_xb = kalman.retrodict(
        tracks.x[:, back].T,
        tracks.P[:, :, back].transpose(2, 0, 1),
        tracks.t[back] - t,
        accel_var,
    )
    # Visible tracks keep their row order; late ones read the retrodicted state.
    z_pred = tracks.x[:2, rows].T.copy()
    P_pos = tracks.P[:2, :2, rows].transpose(2, 0, 1).copy()
    z_pred[late] = x_b[:, :2]
    P_pos[late] = P_b[:, :2, :2]
    return z_pred, P_pos, (x_b, P_b, P_xb), None


def update_visible(
    tracks: TrackTable, rows: np.ndarray, sel: slice | np.ndarray, late: np.ndarray,
    track: np.ndarray,
    detection: np.ndarray, batch: DetectionBatch, oosm: Retrodicted | None,
    pending: motion.Prediction | None, model: motion.MotionModel, stats: Counter[str],
) -> None:
    """Update the visible tracks that took a detection, and book the hit.

    Parameters
    ----------
    tracks : TrackTable
    rows, sel, late
        As for :func:`predict_visible`.
    track, detection : ndarray, shape (A,), intp
        The assignment: index into ``rows`` (ascending) and into the batch.
    batch : DetectionBatch
    oosm, pending
        From :func:`predict_visible`.
    model : MotionModel
    stats : Counter
        Counts ``oosm_updates`` and ``oosm_rejected``.
    """
    if pending is not None:  # no late track: the prediction is in hand
        hit, z, R = _detections_by_row(pending, track, detection, batch)
        motion.update_predicted(tracks, sel, pending, hit, z, R, model)
    else:  # the on-time tracks were predicted in the table
        is_late = late[track]
        now_rows, now_det = rows[track[~is_late]], detection[~is_late]
        # take keeps the gathered copies batch-last in memory; fancy indexing on
        # the last axis would lay them out batch-first and slow the kernel fivefold.
        z = batch.z.T.take(now_det, axis=-1)
        R = batch.R.transpose(1, 2, 0).take(now_det, axis=-1)
        motion.update_rows(tracks, now_rows, z, R, model)
        if oosm is not None and is_late.any():
            late_track = track[is_late]
            _update_late(tracks, rows, late, late_track, detection[is_late], batch, oosm, stats)
    assigned = rows[track]
    tracks.t_hit[assigned] = np.maximum(tracks.t_hit[assigned], batch.t)
    if batch.cls is not None:
        # 1.0 each without confidences: a scalar adds the same float32 sums as an
        # array of ones (the exact sum, rounded once), without building one.
        weight = 1.0 if batch.conf is None else batch.conf[detection]
        # assigned rows are unique: += adds what np.add.at would, several times faster
        tracks.class_evidence[batch.cls[detection], assigned] += weight


def _detections_by_row(
    pending: motion.Prediction, track: np.ndarray, detection: np.ndarray, batch: DetectionBatch
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each predicted row's detection, as :func:`motion.update_predicted` takes them.

    Returns
    -------
    hit : ndarray, shape (V,), bool
    z : ndarray, shape (2, V)
    R : ndarray, shape (2, 2, V)
        A row without a detection gets its predicted position and a unit covariance:
        finite and positive-definite, and its update is discarded.
    """
    V = pending.x.shape[-1]
    hit = np.zeros(V, dtype=bool)
    hit[track] = True
    # take keeps the gathered copies batch-last in memory; fancy indexing on the
    # last axis would lay them out batch-first and slow the kernels fivefold.
    z_taken = batch.z.T.take(detection, axis=-1)
    R_taken = batch.R.transpose(1, 2, 0).take(detection, axis=-1)
    if track.size == V:  # every row took one (track is 0 .. V-1)
        return hit, z_taken, R_taken
    z = pending.x[:2].copy()
    z[:, track] = z_taken
    R = np.empty((2, 2, V))
    R[...] = np.eye(2)[:, :, None]
    R[:, :, track] = R_taken
    return hit, z, R


def _update_late(
    tracks: TrackTable, rows: np.ndarray, late: np.ndarray, track: np.ndarray,
    detection: np.ndarray, batch: DetectionBatch, oosm: Retrodicted, stats: Counter[str],
) -> None:
    """The out-of-sequence update of the late tracks ``rows[track]`` (A,) with the
    detections ``detection`` (A,)."""
    # position of each assigned late track within the retrodicted arrays
    k = (np.cumsum(late) - 1)[track]
    back_rows = rows[track]
    x_b, P_b, P_xb = (a[k] for a in oosm)
    x, P = kalman.update_out_of_sequence(
        tracks.x[:, back_rows].T,
        tracks.P[:, :, back_rows].transpose(2, 0, 1),
        x_b,
        P_b,
        P_xb,
        batch.z[detection],
        batch.R[detection],
    )
    # The one-lag approximation can lose definiteness on long lags; such an
    # update is dropped (and counted) rather than corrupting the track.
    ok = np.linalg.eigvalsh(P).min(axis=1) > 0
    tracks.x[:, back_rows[ok]] = x[ok].T
    tracks.P[:, :, back_rows[ok]] = P[ok].transpose(1, 2, 0)
    motion.reset_modes(tracks, back_rows[ok])
    stats["oosm_updates"] += int(ok.sum())
    stats["oosm_rejected"] += int((~ok).sum())
