"""The motion model applied to rows of the track table: one Kalman filter or an IMM.

The table always holds the combined (moment-matched) state ``x``, ``P`` that gating,
snapshots and alert rules read; with the IMM (``TrackerConfig.imm``, the default) it
also holds each mode's ``x_m`` (J, 4, N), ``P_m`` (J, 4, 4, N) and probabilities
``mu`` (J, N), which only this module touches. See ``fusion.tracking.imm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.tracking import imm, kalman
from fusion.tracking.config import TrackerConfig
from fusion.tracking.track_table import TrackTable


def rows_of(tracks: TrackTable, name: str, sel: slice | np.ndarray) -> np.ndarray:
    """The tracks ``sel`` of column ``name``, shaped as the attribute (``x`` (4, K)).

    A slice gives a view; an index array a batch-last copy (``TrackTable.take``).
    """
    return getattr(tracks, name)[..., sel] if isinstance(sel, slice) else tracks.take(name, sel)


@dataclass(frozen=True)
class MotionModel:
    """Constant-velocity modes: acceleration noise variance and mean sojourn of each.

    Attributes
    ----------
    accel_vars : ndarray, shape (J,)
        (m/s^2)^2 per mode; J = 1 is a plain Kalman filter.
    sojourn : ndarray, shape (J,)
        Mean seconds in each mode before switching.
    """

    accel_vars: np.ndarray
    sojourn: np.ndarray

    @property
    def imm(self) -> bool:
        return self.accel_vars.shape[0] > 1

    @classmethod
    def from_config(cls, cfg: TrackerConfig) -> MotionModel:
        if not cfg.imm:
            return cls(np.array([cfg.accel_std**2]), np.array([np.inf]))
        return cls(
            np.array([cfg.quiet_accel_std**2, cfg.accel_std**2]),
            np.array([cfg.quiet_sojourn, cfg.manoeuvre_sojourn]),
        )


@dataclass(frozen=True)
class Prediction:
    """Predicted tracks, not yet written to the table.

    Attributes
    ----------
    x : ndarray, shape (4, V)
        Combined state.
    P_pos : ndarray, shape (2, 2, V)
        Combined position covariance: what gating reads. The full combined covariance
        is only formed once the assignment is known (:func:`update_predicted`).
    prior : dict
        The columns an update starts from: ``x_m`` (J, 4, V), ``P_m`` (J, 4, 4, V) and
        ``mu`` (J, V) with the IMM; ``x`` (4, V) and ``P`` (4, 4, V) without.
    """

    x: np.ndarray
    P_pos: np.ndarray
    prior: dict[str, np.ndarray]


def predict_modes(
    tracks: TrackTable, sel: slice | np.ndarray, t: float, model: MotionModel
) -> Prediction:
    """Predict the tracks ``sel`` to time ``t``, without writing them
    (:func:`update_predicted` or :func:`write_prediction` does)."""
    dt = t - tracks.t[sel]
    if not model.imm:
        x, P = kalman.predict_batch_last(
            rows_of(tracks, "x", sel), rows_of(tracks, "P", sel), dt, float(model.accel_vars[0])
        )
        return Prediction(x, P[:2, :2], {"x": x, "P": P})
    M = imm.switching_matrix(dt, model.sojourn)
    x_m, P_m, cbar = imm.predict(
        rows_of(tracks, "x_m", sel), rows_of(tracks, "P_m", sel), rows_of(tracks, "mu", sel),
        M, dt, model.accel_vars,
    )
    x, P_pos = imm.combine_position(x_m, P_m, cbar)
    # Until a detection says otherwise, the mode probabilities are the predicted ones.
    return Prediction(x, P_pos, {"x_m": x_m, "P_m": P_m, "mu": cbar})


def _with_combined(modes: dict[str, np.ndarray], model: MotionModel) -> dict[str, np.ndarray]:
    """``modes`` (:attr:`Prediction.prior`) and, with the IMM, their moment-matched
    ``x`` and ``P``: every column a batch writes."""
    if not model.imm:
        return modes
    x, P = imm.combine(modes["x_m"], modes["P_m"], modes["mu"])
    return {**modes, "x": x, "P": P}


def write_prediction(
    tracks: TrackTable, sel: slice | np.ndarray, predicted: Prediction, model: MotionModel
) -> None:
    """Store :func:`predict_modes`'s result for the tracks ``sel`` (their time apart)."""
    tracks.put_rows(sel, _with_combined(predicted.prior, model))


def predict_rows(
    tracks: TrackTable, sel: slice | np.ndarray, t: float, model: MotionModel
) -> None:
    """Predict the tracks ``sel`` to time ``t`` in the table."""
    write_prediction(tracks, sel, predict_modes(tracks, sel, t, model), model)
    tracks.t[sel] = t


def _update(
    prior: dict[str, np.ndarray], z: np.ndarray, R: np.ndarray, model: MotionModel,
    missed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every column of the update of ``prior`` (:attr:`Prediction.prior`) with ``z``
    (2, K), ``R`` (2, 2, K); the rows where ``missed`` (K,) keep their prior."""
    if not model.imm:
        x, P = kalman.update_batch_last(prior["x"], prior["P"], z, R)
        posterior = {"x": x, "P": P}
    else:
        x_m, P_m, mu = imm.update(prior["x_m"], prior["P_m"], prior["mu"], z, R)
        posterior = {"x_m": x_m, "P_m": P_m, "mu": mu}
    if missed is not None:
        for name, column in posterior.items():
            # Mode columns are mode-first views of (..., J, K) memory: the (K,) mask
            # broadcasts over modes and matrix entries alike.
            np.copyto(column, prior[name], where=missed)
    return _with_combined(posterior, model)


def update_predicted(
    tracks: TrackTable, sel: slice | np.ndarray, predicted: Prediction, hit: np.ndarray,
    z: np.ndarray, R: np.ndarray, model: MotionModel,
) -> None:
    """Write the tracks ``sel`` (V of them) back: updated where ``hit``, else predicted.

    Every row runs through the update, so all V are worked on and written once each,
    in table order: for a scan that sees the whole table that is contiguous memory,
    where updating only the rows that took a detection would gather them from the
    prediction and scatter them into the table, which cost more than the update of
    the few that took none. The rows without a detection then take their prediction
    back, bit for bit, predicted mode probabilities included.

    Parameters
    ----------
    tracks : TrackTable
    sel : slice or ndarray, shape (V,), intp
    predicted : Prediction
        :func:`predict_modes` of ``sel``.
    hit : ndarray, shape (V,), bool
        Whether each row took a detection.
    z : ndarray, shape (2, V)
    R : ndarray, shape (2, 2, V)
        Each row's detection; where there is none, any finite position and
        positive-definite covariance (that result is discarded).
    model : MotionModel
    """
    missed = None if hit.all() else ~hit
    tracks.put_rows(sel, _update(predicted.prior, z, R, model, missed))


def update_rows(
    tracks: TrackTable, rows: np.ndarray, z: np.ndarray, R: np.ndarray, model: MotionModel,
) -> None:
    """Update the tracks ``rows`` (K,), predicted in the table, with detections ``z``
    (2, K), ``R`` (2, 2, K)."""
    names = ("x_m", "P_m", "mu") if model.imm else ("x", "P")
    prior = {name: rows_of(tracks, name, rows) for name in names}
    tracks.put_rows(rows, _update(prior, z, R, model))


def reset_modes(tracks: TrackTable, rows: np.ndarray, fresh: bool = False) -> None:
    """Set every mode of ``rows`` to the combined state (after an out-of-sequence update,
    which corrects the combined state only); ``fresh`` also resets ``mu`` to uniform."""
    J = tracks.mu.shape[0]
    tracks.put("x_m", rows, tracks.take("x", rows)[None])
    tracks.put("P_m", rows, tracks.take("P", rows)[None])
    if fresh:
        tracks.mu[:, rows] = 1.0 / J
