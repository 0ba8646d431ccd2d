"""The multi-target tracker: one detection batch in, what changed out.

Per batch, the algorithm (:meth:`Tracker.process`) is

1. find the live tracks the sensor could have seen (predicted position in coverage);
2. predict them to the batch time (or retrodict, for a batch older than the track);
3. gate every plausible (track, detection) pair on the Mahalanobis distance;
4. assign by global nearest neighbour;
5. update assigned tracks (Joseph form; out-of-sequence update for late batches);
6. record hits and misses of the visible tracks, confirm by M-of-N;
7. start tentative tracks on detections no confirmed track claims;
8. delete tracks that failed confirmation, missed too often, coasted too long or
   grew too uncertain.

Every step is vectorised over tracks and detections; see ``fusion.tracking.kalman``,
``fusion.tracking.gating``, ``fusion.tracking.association``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion.config import ConfigError, from_mapping, load_toml
from fusion.messages import CLASSES, DetectionBatch
from fusion.tracking import kalman
from fusion.tracking.association import assign
from fusion.tracking.coverage import points_in_polygon
from fusion.tracking.gating import gate, gate_threshold
from fusion.tracking.track_table import CONFIRMED, TENTATIVE, TrackTable


def _columns(a: np.ndarray, sel: slice | np.ndarray) -> np.ndarray:
    """The tracks ``sel`` of a batch-last column ``a`` (..., n), kept batch-last.

    A slice gives a view; an index array a copy via ``np.take``, because fancy
    indexing on the last axis would lay the copy out batch-first in memory.
    """
    return a[..., sel] if isinstance(sel, slice) else np.take(a, sel, axis=-1)


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker parameters; load from the ``[tracker]`` table of a TOML file.

    Attributes
    ----------
    accel_std : float
        Standard deviation of the white acceleration noise, m/s^2. Covers walkers,
        turning vehicles and drones with one model.
    gate_probability : float
        Probability that the true detection of a track falls inside its gate.
    init_velocity_std : float
        Prior standard deviation of each velocity component of a new track, m/s; one
        detection says nothing about velocity, so it must cover the fastest target.
    confirm_m, confirm_n : int
        A tentative track is confirmed after ``confirm_m`` hits in its last
        ``confirm_n`` in-coverage scans, and deleted once it can no longer get there.
    max_misses : int
        Consecutive in-coverage misses after which a confirmed track is deleted...
    min_miss_time : float
        ...provided its last detection is also at least this many seconds old. Misses
        come per batch, and with several sensors over one place (radars at 1 Hz, drone
        frames at 4 Hz, ground sensors that rarely hear people) five misses can pile up
        within a second; a count alone then deletes tracks of targets still there.
    max_coast_time : float
        Seconds without any detection after which a confirmed track is deleted.
    tentative_max_coast_time : float
        The same for tentative tracks.
    max_position_std : float
        A track whose larger position standard deviation exceeds this, metres, is
        deleted: it no longer says where the target is.
    initiation_exclusion_probability : float
        No track starts on a detection that lies inside this (wider) gate of a
        confirmed track: such a detection is far more likely a noisy return of that
        target, and a second track on it would be a duplicate.
    max_oosm_lag : float
        Batches older than a track's state by more than this, seconds, are not fused
        into it (neither update nor miss).
    initial_capacity : int
        Rows reserved in the track table at start.
    """

    accel_std: float = 2.0
    gate_probability: float = 0.99
    init_velocity_std: float = 15.0
    confirm_m: int = 4
    confirm_n: int = 6
    max_misses: int = 5
    min_miss_time: float = 3.0
    max_coast_time: float = 30.0
    tentative_max_coast_time: float = 10.0
    max_position_std: float = 1000.0
    max_oosm_lag: float = 300.0
    initiation_exclusion_probability: float = 0.99999
    initial_capacity: int = 1024

    def __post_init__(self) -> None:
        positive = ("accel_std", "init_velocity_std", "max_coast_time", "max_position_std")
        if self.min_miss_time < 0:
            raise ConfigError(f"tracker.min_miss_time must be >= 0, got {self.min_miss_time}")
        for name in positive + ("tentative_max_coast_time",):
            if not getattr(self, name) > 0:
                raise ConfigError(f"tracker.{name} must be positive, got {getattr(self, name)}")
        for name in ("gate_probability", "initiation_exclusion_probability"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"tracker.{name} must lie in (0, 1), got {getattr(self, name)}")
        if not 1 <= self.confirm_m <= self.confirm_n <= 32:
            raise ConfigError(
                "tracker.confirm_m/confirm_n need 1 <= M <= N <= 32, "
                f"got {self.confirm_m}/{self.confirm_n}"
            )
        if self.max_misses < 1 or self.initial_capacity < 1 or self.max_oosm_lag < 0:
            raise ConfigError(
                "tracker.max_misses and initial_capacity must be >= 1, max_oosm_lag >= 0"
            )

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "tracker") -> TrackerConfig:
        """Load from the ``[tracker]`` table of a TOML file (missing keys keep defaults)."""
        return from_mapping(cls, load_toml(path).get(table, {}), table)


@dataclass(frozen=True)
class BatchResult:
    """What one batch changed. All arrays are track ids (int64).

    Attributes
    ----------
    updated : ndarray
        Tracks a detection of this batch updated.
    initiated : ndarray
        New tentative tracks.
    confirmed : ndarray
        Tracks confirmed by this batch.
    deleted : ndarray
        Tracks deleted after this batch.
    n_visible : int
        Tracks that were inside the batch's coverage.
    n_late : int
        Of those, how many had a state newer than the batch (out-of-sequence update).
    """

    updated: np.ndarray
    initiated: np.ndarray
    confirmed: np.ndarray
    deleted: np.ndarray
    n_visible: int = 0
    n_late: int = 0


@dataclass(frozen=True)
class TrackSnapshot:
    """Arrays describing a set of tracks.

    Attributes
    ----------
    ids : ndarray, shape (N,), int64
    x : ndarray, shape (N, 4)
        east, north (m), v_east, v_north (m/s).
    P : ndarray, shape (N, 4, 4)
    t : ndarray, shape (N,)
        Time each state refers to.
    cls : ndarray, shape (N,), uint8
        Most likely class, an index into ``fusion.messages.CLASSES``.
    conf : ndarray, shape (N,)
        Share of the class evidence behind ``cls`` (0 when there is none).
    """

    ids: np.ndarray
    x: np.ndarray
    P: np.ndarray
    t: np.ndarray
    cls: np.ndarray
    conf: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class Tracker:
    """Vectorised GNN multi-target tracker over a structure-of-arrays track table.

    Parameters
    ----------
    config : TrackerConfig
    """

    config: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        self.tracks = TrackTable(self.config.initial_capacity)
        self.latest_time = -np.inf
        self.stats: Counter[str] = Counter()
        self._gamma = gate_threshold(self.config.gate_probability)
        self._gamma_exclusion = max(
            self._gamma, gate_threshold(self.config.initiation_exclusion_probability)
        )
        self._accel_var = self.config.accel_std**2
        self._window_mask = np.uint32((1 << self.config.confirm_n) - 1)

    def __len__(self) -> int:
        return len(self.tracks)

    # -- the per-batch algorithm ------------------------------------------------------

    def process(self, batch: DetectionBatch) -> BatchResult:
        """Fuse one detection batch and return what changed.

        Parameters
        ----------
        batch : DetectionBatch
            Detections with their covariances, measurement time and coverage.

        Returns
        -------
        BatchResult
        """
        t = batch.t
        self.latest_time = max(self.latest_time, t)
        rows, sel = self._visible_rows(batch)
        late = self.tracks.t[sel] > t
        z_pred, P_pos, oosm = self._predict(rows, sel, late, t)
        # One gate at the wider exclusion threshold serves both association (pairs
        # inside the real gate) and the initiation exclusion (all of them).
        wide = gate(z_pred, P_pos, batch.z, batch.R, self._gamma_exclusion)
        pairs = wide.subset(wide.d2 <= self._gamma)
        track, detection = assign(
            rows.size,
            len(batch),
            pairs.track,
            pairs.detection,
            pairs.d2 + pairs.log_det_S,
            self._miss_cost(P_pos, batch.R),
        )
        self._update(rows, late, track, detection, batch, oosm)
        updated = self.tracks.id[rows[track]]
        hit = np.zeros(rows.size, dtype=bool)
        hit[track] = True
        confirmed = self._record_scan(rows, sel, hit)
        initiated = self._initiate(batch, rows, wide, detection)
        deleted = self._delete(rows)
        self.stats["batches"] += 1
        self.stats["detections"] += len(batch)
        return BatchResult(
            updated=updated,
            initiated=initiated,
            confirmed=confirmed,
            deleted=deleted,
            n_visible=int(rows.size),
            n_late=int(np.count_nonzero(late)),
        )

    # -- steps ----------------------------------------------------------------------

    def _visible_rows(self, batch: DetectionBatch) -> tuple[np.ndarray, slice | np.ndarray]:
        """Rows of the tracks the batch's sensor could have seen.

        Returns the rows (intp) and a selector for them: the slice of all live rows
        when every track is visible (the usual all-seeing scan), so that the steps
        below work on views of the table instead of gathered copies.
        """
        tracks = self.tracks
        lag = tracks.t - batch.t
        candidates = lag <= self.config.max_oosm_lag
        if batch.coverage is not None:
            position = tracks.x[:2] - tracks.x[2:] * lag
            candidates &= points_in_polygon(position.T, batch.coverage)
        rows = np.flatnonzero(candidates)
        return rows, (slice(0, tracks.n) if rows.size == tracks.n else rows)

    def _predict(
        self, rows: np.ndarray, sel: slice | np.ndarray, late: np.ndarray, t: float
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Predict on-time tracks to ``t`` (kept) and retrodict late ones (not kept).

        Returns the predicted measurement (V, 2) and position covariance (V, 2, 2) of
        every visible track (views of batch-last arrays), and the retrodiction
        ``(x_b, P_b, P_xb)`` (batch-first) of the late ones, or None when none is late.
        """
        tracks = self.tracks
        if not late.any():
            x, P = kalman.predict_batch_last(
                _columns(tracks.x, sel), _columns(tracks.P, sel), t - tracks.t[sel], self._accel_var
            )
            tracks.x[:, sel], tracks.P[:, :, sel], tracks.t[sel] = x, P, t
            return x[:2].T, P[:2, :2].transpose(2, 0, 1), None
        # Out-of-sequence batch (rare): the general path.
        now = rows[~late]
        x, P = kalman.predict_batch_last(
            tracks.x[:, now], tracks.P[:, :, now], t - tracks.t[now], self._accel_var
        )
        tracks.x[:, now], tracks.P[:, :, now], tracks.t[now] = x, P, t
        back = rows[late]
        x_b, P_b, P_xb = kalman.retrodict(
            tracks.x[:, back].T,
            tracks.P[:, :, back].transpose(2, 0, 1),
            tracks.t[back] - t,
            self._accel_var,
        )
        # Visible tracks keep their row order; late ones read the retrodicted state.
        z_pred = tracks.x[:2, rows].T.copy()
        P_pos = tracks.P[:2, :2, rows].transpose(2, 0, 1).copy()
        z_pred[late] = x_b[:, :2]
        P_pos[late] = P_b[:, :2, :2]
        return z_pred, P_pos, (x_b, P_b, P_xb)

    def _miss_cost(self, P_pos: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Cost of a track taking no detection: the same for every track.

        It is the gate at the vaguest track's typical innovation covariance, so that
        any gated pair beats a miss, while ``ln |S|`` still decides between a precise
        and a vague track competing for one detection (a per-track miss cost would
        cancel that term out of every comparison).
        """
        if R.shape[0] == 0 or P_pos.shape[0] == 0:
            return np.zeros(P_pos.shape[0])
        R_mean = R.mean(axis=0)
        # S = P_pos + mean R, kept as its three distinct entries per track
        det = (P_pos[:, 0, 0] + R_mean[0, 0]) * (P_pos[:, 1, 1] + R_mean[1, 1])
        det -= (P_pos[:, 0, 1] + R_mean[0, 1]) ** 2
        return np.full(P_pos.shape[0], self._gamma + np.log(det.max()))

    def _update(
        self,
        rows: np.ndarray,
        late: np.ndarray,
        track: np.ndarray,
        detection: np.ndarray,
        batch: DetectionBatch,
        oosm: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> None:
        tracks = self.tracks
        if oosm is None:
            now_rows, now_det = rows[track], detection
        else:
            is_late = late[track]
            now_rows, now_det = rows[track[~is_late]], detection[~is_late]
        # np.take keeps the gathered copies batch-last in memory; fancy indexing on
        # the last axis would lay them out batch-first and slow the kernel fivefold.
        x, P = kalman.update_batch_last(
            np.take(tracks.x, now_rows, axis=-1),
            np.take(tracks.P, now_rows, axis=-1),
            np.take(batch.z.T, now_det, axis=-1),
            np.take(batch.R.transpose(1, 2, 0), now_det, axis=-1),
        )
        tracks.x[:, now_rows], tracks.P[:, :, now_rows] = x, P
        if oosm is not None and is_late.any():
            # position of each assigned late track within the retrodicted arrays
            late_index = np.cumsum(late) - 1
            k = late_index[track[is_late]]
            back_rows = rows[track[is_late]]
            back_det = detection[is_late]
            x_b, P_b, P_xb = (a[k] for a in oosm)
            x, P = kalman.update_out_of_sequence(
                tracks.x[:, back_rows].T,
                tracks.P[:, :, back_rows].transpose(2, 0, 1),
                x_b,
                P_b,
                P_xb,
                batch.z[back_det],
                batch.R[back_det],
            )
            # The one-lag approximation can lose definiteness on long lags; such an
            # update is dropped (and counted) rather than corrupting the track.
            ok = np.linalg.eigvalsh(P).min(axis=1) > 0
            tracks.x[:, back_rows[ok]] = x[ok].T
            tracks.P[:, :, back_rows[ok]] = P[ok].transpose(1, 2, 0)
            self.stats["oosm_updates"] += int(ok.sum())
            self.stats["oosm_rejected"] += int((~ok).sum())
        assigned = rows[track]
        tracks.t_hit[assigned] = np.maximum(tracks.t_hit[assigned], batch.t)
        if batch.cls is not None:
            weight = np.ones(detection.size) if batch.conf is None else batch.conf[detection]
            np.add.at(tracks.class_evidence, (batch.cls[detection], assigned), weight)

    def _record_scan(
        self, rows: np.ndarray, sel: slice | np.ndarray, hit: np.ndarray
    ) -> np.ndarray:
        """Shift hit/miss history of the visible tracks; return ids newly confirmed."""
        tracks = self.tracks
        tracks.history[sel] = ((tracks.history[sel] << np.uint32(1)) | hit) & self._window_mask
        tracks.scans[sel] += 1
        tracks.misses_in_row[sel] = np.where(hit, 0, tracks.misses_in_row[sel] + 1)
        tentative = rows[tracks.status[sel] == TENTATIVE]
        hits = np.bitwise_count(tracks.history[tentative])
        promote = tentative[hits >= self.config.confirm_m]
        tracks.status[promote] = CONFIRMED
        self.stats["confirmed"] += promote.size
        return tracks.id[promote].copy()

    def _initiate(
        self, batch: DetectionBatch, rows: np.ndarray, pairs, detection: np.ndarray
    ) -> np.ndarray:
        """Start tentative tracks on detections that no confirmed track claims.

        A detection inside a confirmed track's gate but not assigned to it is more
        likely a second return of that target than a new one, so it starts nothing.
        """
        free = np.ones(len(batch), dtype=bool)
        free[detection] = False
        claimed = self.tracks.status[rows[pairs.track]] == CONFIRMED
        free[pairs.detection[claimed]] = False
        new = np.flatnonzero(free)
        if new.size == 0:
            return np.empty(0, dtype=np.int64)
        x = np.zeros((4, new.size))
        x[:2] = batch.z[new].T
        P = np.zeros((4, 4, new.size))
        P[:2, :2] = batch.R[new].transpose(1, 2, 0)
        P[2, 2] = P[3, 3] = self.config.init_velocity_std**2
        first = self.tracks.n
        ids = self.tracks.add(x, P, batch.t)
        if batch.cls is not None:
            weight = np.ones(new.size) if batch.conf is None else batch.conf[new]
            self.tracks.class_evidence[batch.cls[new], first + np.arange(new.size)] = weight
        self.stats["initiated"] += new.size
        return ids

    def _delete(self, rows: np.ndarray) -> np.ndarray:
        """Delete failed, lost and diverged tracks; return their ids."""
        tracks, cfg = self.tracks, self.config
        tentative = tracks.status == TENTATIVE
        misses_in_window = np.minimum(tracks.scans, cfg.confirm_n) - np.bitwise_count(
            tracks.history
        )
        silent = self.latest_time - tracks.t_hit
        reasons = {
            "unconfirmed": tentative & (misses_in_window > cfg.confirm_n - cfg.confirm_m),
            "tentative_coast": tentative & (silent > cfg.tentative_max_coast_time),
            "misses": ~tentative
            & (tracks.misses_in_row >= cfg.max_misses)
            & (silent >= cfg.min_miss_time),
            "coast": ~tentative & (silent > cfg.max_coast_time),
            "uncertain": np.maximum(tracks.P[0, 0], tracks.P[1, 1]) > cfg.max_position_std**2,
        }
        doomed = reasons["unconfirmed"]
        for mask in list(reasons.values())[1:]:  # five reasons, not a loop per track
            doomed = doomed | mask
        if not doomed.any():
            return np.empty(0, dtype=np.int64)
        counted = np.zeros(tracks.n, dtype=bool)
        for reason, mask in reasons.items():
            self.stats[f"deleted_{reason}"] += int(np.count_nonzero(mask & ~counted))
            counted |= mask
        dead = np.flatnonzero(doomed)
        ids = tracks.id[dead].copy()
        tracks.remove(dead)
        return ids

    # -- queries --------------------------------------------------------------------

    def snapshot(self, confirmed_only: bool = True, at: float | None = None) -> TrackSnapshot:
        """Copy out the (confirmed) tracks, optionally predicted to time ``at``.

        Predicting here does not change the tracks: it is for displays and rules that
        need every track at one time.
        """
        tracks = self.tracks
        rows = (
            np.flatnonzero(tracks.status == CONFIRMED) if confirmed_only else np.arange(len(tracks))
        )
        x, P, t = tracks.x[:, rows], tracks.P[:, :, rows], tracks.t[rows]
        if at is not None:
            x, P = kalman.predict_batch_last(x, P, at - t, self._accel_var)
            t = np.full(rows.size, float(at))
        x, P = np.ascontiguousarray(x.T), np.ascontiguousarray(P.transpose(2, 0, 1))
        evidence = tracks.class_evidence[:, rows].T.astype(np.float64)
        total = evidence.sum(axis=1)
        cls = np.where(total > 0, evidence.argmax(axis=1), 0).astype(np.uint8)
        conf = np.divide(evidence.max(axis=1), total, out=np.zeros(rows.size), where=total > 0)
        return TrackSnapshot(tracks.id[rows].copy(), x, P, t, cls, conf)

    def confirmed(self, at: float | None = None) -> TrackSnapshot:
        """Ids, states and covariances of the confirmed tracks (see :meth:`snapshot`)."""
        return self.snapshot(confirmed_only=True, at=at)

    # -- checkpoints ----------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray | int | float]:
        """Everything needed to resume tracking (see :meth:`load_state_dict`)."""
        state: dict[str, np.ndarray | int | float] = dict(self.tracks.state_dict())
        state["latest_time"] = float(self.latest_time)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray | int | float]) -> None:
        self.tracks = TrackTable.from_state_dict(state)  # type: ignore[arg-type]
        self.latest_time = float(state["latest_time"])  # type: ignore[arg-type]


__all__ = ["BatchResult", "CLASSES", "Tracker", "TrackerConfig", "TrackSnapshot"]
