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
    P : ndarray, shape (4, 4, V)
        Combined state and covariance.
    modes : dict
        The IMM columns (``x_m`` (J, 4, V), ``P_m`` (J, 4, 4, V), ``mu`` (J, V)); empty
        without the IMM.
    """

    x: np.ndarray
    P: np.ndarray
    modes: dict[str, np.ndarray]

    def columns(self) -> dict[str, np.ndarray]:
        """Every predicted column by name, as :meth:`TrackTable.put_rows` takes them."""
        return {**self.modes, "x": self.x, "P": self.P}


def predict_modes(
    tracks: TrackTable, sel: slice | np.ndarray, t: float, model: MotionModel
) -> Prediction:
    """Predict the tracks ``sel`` to time ``t``, without writing them
    (:func:`write_prediction`)."""
    dt = t - tracks.t[sel]
    if not model.imm:
        x, P = kalman.predict_batch_last(
            rows_of(tracks, "x", sel), rows_of(tracks, "P", sel), dt, float(model.accel_vars[0])
        )
        return Prediction(x, P, {})
    M = imm.switching_matrix(dt, model.sojourn)
    x_m, P_m, cbar = imm.predict(
        rows_of(tracks, "x_m", sel), rows_of(tracks, "P_m", sel), rows_of(tracks, "mu", sel),
        M, dt, model.accel_vars,
    )
    x, P = imm.combine(x_m, P_m, cbar)
    # Until a detection says otherwise, the mode probabilities are the predicted ones.
    return Prediction(x, P, {"x_m": x_m, "P_m": P_m, "mu": cbar})


def write_prediction(tracks: TrackTable, sel: slice | np.ndarray, predicted: Prediction) -> None:
    """Store :func:`predict_modes`'s result for the tracks ``sel`` (their time apart)."""
    tracks.put_rows(sel, predicted.columns())


def predict_rows(
    tracks: TrackTable, sel: slice | np.ndarray, t: float, model: MotionModel
) -> tuple[np.ndarray, np.ndarray]:
    """Predict the tracks ``sel`` to time ``t`` in the table; returns the combined
    ``x`` (4, V) and ``P`` (4, 4, V)."""
    predicted = predict_modes(tracks, sel, t, model)
    write_prediction(tracks, sel, predicted)
    tracks.t[sel] = t
    return predicted.x, predicted.P


def update_rows(
    tracks: TrackTable, rows: np.ndarray, z: np.ndarray, R: np.ndarray, model: MotionModel,
    prior: Prediction | None = None,
) -> None:
    """Update the tracks ``rows`` (K,) with detections ``z`` (2, K), ``R`` (2, 2, K).

    ``prior``: their prediction, when it was not written to the table (every row it
    predicted took a detection, in order); otherwise the prior is read from the table.
    """
    predicted = None if prior is None else prior.columns()

    def prior_of(name: str) -> np.ndarray:
        return rows_of(tracks, name, rows) if predicted is None else predicted[name]

    modes: dict[str, np.ndarray] = {}  # the IMM columns, written with x and P
    if not model.imm:
        x, P = kalman.update_batch_last(prior_of("x"), prior_of("P"), z, R)
    else:
        x_m, P_m, mu = imm.update(prior_of("x_m"), prior_of("P_m"), prior_of("mu"), z, R)
        x, P = imm.combine(x_m, P_m, mu)
        modes = {"x_m": x_m, "P_m": P_m, "mu": mu}
    tracks.put_rows(rows, {**modes, "x": x, "P": P})


def reset_modes(tracks: TrackTable, rows: np.ndarray, fresh: bool = False) -> None:
    """Set every mode of ``rows`` to the combined state (after an out-of-sequence update,
    which corrects the combined state only); ``fresh`` also resets ``mu`` to uniform."""
    J = tracks.mu.shape[0]
    tracks.put("x_m", rows, tracks.take("x", rows)[None])
    tracks.put("P_m", rows, tracks.take("P", rows)[None])
    if fresh:
        tracks.mu[:, rows] = 1.0 / J
