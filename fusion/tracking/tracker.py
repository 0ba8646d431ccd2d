"""The multi-target tracker: one detection batch in, what changed out.

Per batch, the algorithm (:meth:`Tracker.process`) is

1. find the live tracks the sensor could have seen (predicted position in coverage);
2. predict them to the batch time (or retrodict, for a batch older than the track);
3. gate every plausible (track, detection) pair on the Mahalanobis distance;
4. assign by global nearest neighbour;
5. update assigned tracks (Joseph form; out-of-sequence update for late batches);
6. score the visible tracks (a hit by its likelihood against clutter, a miss by the
   sensor's detection probability and the chance the track was in its footprint) and
   confirm those whose score passes the SPRT threshold (``fusion.tracking.existence``);
7. give a newly confirmed track the id of a recently lost track it continues, and a
   young confirmed track that of a coasting one it took over after a manoeuvre (the
   old row then goes silently; ``fusion.tracking.continuity``);
8. start tentative tracks on detections no confirmed track claims;
9. delete tracks whose score fell below the threshold, and (once a second over the whole
   table) tracks that coasted too long or grew too uncertain.

Every step is vectorised over tracks and detections; see ``fusion.tracking.visible``
(steps 2 and 5), ``fusion.tracking.kalman``, ``fusion.tracking.gating``,
``fusion.tracking.association``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from fusion.messages import CLASSES, DetectionBatch
from fusion.tracking import existence, kalman, lifecycle, motion
from fusion.tracking.association import assign, miss_cost
from fusion.tracking.clutter import ClutterEstimator, footprint_area
from fusion.tracking.config import TrackerConfig
from fusion.tracking.continuity import continue_ids, duplicates
from fusion.tracking.coverage import rows_in_polygon
from fusion.tracking.gating import GatedPairs, gate, gate_threshold
from fusion.tracking.lost import LostTracks, revive_into
from fusion.tracking.track_table import CONFIRMED, TENTATIVE, TrackTable
from fusion.tracking.visible import predict_visible, update_visible

# Coasting and uncertainty of tracks out of every coverage are checked this often (s of
# measurement time) over the whole table; everything else only over the visible rows.
SWEEP_INTERVAL = 1.0
# Duplicate tracks are looked for this often: a gate of every confirmed track against
# every other costs as much as a batch's own gating, and duplicates live for minutes.
MERGE_INTERVAL = 5.0


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
    mu : ndarray, shape (J, N), optional
        IMM mode probabilities (quiet first, then manoeuvring); None without the IMM.
    """

    ids: np.ndarray
    x: np.ndarray
    P: np.ndarray
    t: np.ndarray
    cls: np.ndarray
    conf: np.ndarray
    mu: np.ndarray | None = None

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
        cfg = self.config
        self.tracks = TrackTable(cfg.initial_capacity)
        self.lost = LostTracks(cfg.reacquire_probability)
        self.clutter = ClutterEstimator()
        self.latest_time = -np.inf
        self.stats: Counter[str] = Counter()
        self._gamma = gate_threshold(cfg.gate_probability)
        self._gamma_exclusion = max(
            self._gamma, gate_threshold(cfg.initiation_exclusion_probability)
        )
        self._accel_var = cfg.accel_std**2  # for predictions outside the IMM: the wider mode
        self._model = motion.MotionModel.from_config(cfg)
        self._thresholds = existence.Thresholds.from_error_probabilities(
            cfg.false_track_probability, cfg.true_track_loss_probability
        )
        self._last_sweep = self._last_merge = -np.inf
        self._superseded = np.empty(0, dtype=np.intp)  # rows step 7 hands to _delete

    def __len__(self) -> int:
        return len(self.tracks)

    # -- the per-batch algorithm ------------------------------------------------------

    def process(self, batch: DetectionBatch) -> BatchResult:
        """Fuse one detection batch and return what changed.

        Parameters
        ----------
        batch : DetectionBatch
            Detections with their covariances, measurement time, coverage and
            (optionally) the sensor's detection probability and clutter density.

        Returns
        -------
        BatchResult
        """
        t = batch.t
        self.latest_time = max(self.latest_time, t)
        rows, sel = self._visible_rows(batch)
        late = self.tracks.t[sel] > t
        z_pred, P_pos, oosm, pending = predict_visible(
            self.tracks, rows, sel, late, t, self._model, self._accel_var
        )
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
            miss_cost(P_pos, batch.R, self._gamma),
        )
        update_visible(self.tracks, rows, sel, late, track, detection, batch, oosm, pending,
                       self._model, self.stats)
        hit = np.zeros(rows.size, dtype=bool)
        hit[track] = True
        area = footprint_area(batch.z, batch.coverage)
        pd, clutter = self._detection_model(batch, len(batch) - track.size, area)
        delta = lifecycle.score_changes(
            pd, clutter, self.config.gate_probability, pairs, track, detection, z_pred, P_pos,
            batch.coverage,
        )
        # Candidates that could be clutter: the clutter model's count over the footprint
        # (the unassigned detections when the footprint is unknown; at start-up those
        # are mostly targets, so the model's count is preferred).
        candidates = clutter * area if area > 0 else len(batch) - track.size
        confirm_at = existence.confirm_threshold(
            self._thresholds, self.config.false_track_rate, int(np.ceil(candidates)),
            self.config.true_track_loss_probability,
        )
        promoted = lifecycle.record_scan(
            self.tracks, rows, sel, hit, delta, self.config, self._thresholds, confirm_at
        )
        self.stats["confirmed"] += promoted.size
        reacquired, self._superseded = continue_ids(
            self.tracks, self.lost, promoted, rows[track], self.latest_time, self.config,
            self._accel_var,
        )
        self.stats["reacquired"] += reacquired
        self.stats["superseded"] += self._superseded.size
        updated = np.sort(self.tracks.id[rows[track]])
        confirmed = self.tracks.id[promoted].copy()
        revived, initiated = self._initiate(
            batch, rows, wide, hit, detection, pd, clutter, confirm_at
        )
        confirmed = np.concatenate([confirmed, revived])
        self.lost.charge_misses(t, batch.coverage, pd, self.config.gate_probability)
        deleted = self._delete(rows)
        self.tracks.sort_by_id()
        self.stats["batches"] += 1
        self.stats["detections"] += len(batch)
        return BatchResult(
            updated=updated,
            initiated=initiated,
            confirmed=np.sort(confirmed),
            deleted=deleted,
            n_visible=int(rows.size),
            n_late=int(np.count_nonzero(late)),
        )

    # -- steps ----------------------------------------------------------------------

    def _detection_model(
        self, batch: DetectionBatch, unassigned: int, area: float
    ) -> tuple[float, float]:
        """The batch's ``(pd, clutter density)``; what it does not declare, the tracker
        assumes: the kind's default Pd, and the larger of the kind's default clutter
        density and the one learnt from this sensor's unassigned detections."""
        pd, clutter = self.config.detection_model(batch.sensor_kind)
        if batch.clutter_density:
            clutter = batch.clutter_density
        else:
            self.clutter.observe(batch.sensor_id, unassigned, area)
            clutter = max(clutter, self.clutter.density(batch.sensor_id))
        return (pd if batch.pd is None else batch.pd), clutter

    def _visible_rows(self, batch: DetectionBatch) -> tuple[np.ndarray, slice | np.ndarray]:
        """Rows of the tracks the batch's sensor could have seen.

        Returns the rows (intp) and a selector for them: the slice of all live rows
        when every track is visible (the usual all-seeing scan), so that the steps
        below work on views of the table instead of gathered copies.
        """
        tracks = self.tracks
        t = tracks.t
        if batch.coverage is None:
            if tracks.n == 0 or t.min() >= batch.t - self.config.max_oosm_lag:
                return np.arange(tracks.n), slice(0, tracks.n)
            rows = np.flatnonzero(t - batch.t <= self.config.max_oosm_lag)
        else:
            # Position at the batch time; only tracks in the footprint's bounding box
            # get the exact test (rows_in_polygon does the box first), and only those
            # inside get the lag test.
            x = tracks.x
            dt = batch.t - t
            rows = rows_in_polygon(x[0] + x[2] * dt, x[1] + x[3] * dt, batch.coverage)
            rows = rows[-dt[rows] <= self.config.max_oosm_lag]
        return rows, (slice(0, tracks.n) if rows.size == tracks.n else rows)

    def _initiate(
        self, batch: DetectionBatch, rows: np.ndarray, pairs: GatedPairs, hit: np.ndarray,
        detection: np.ndarray, pd: float, clutter: float, confirm_at: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bring back lost tracks and start tentative ones on the detections no confirmed
        track claims; returns the ids revived and the ids initiated.

        A detection inside a confirmed track's gate but not assigned to it is more
        likely a return of that target than a new one, so it starts nothing; a track
        that took no detection claims the wider exclusion gate too (its own return,
        fallen just outside the gate). A track that took one claims only its gate: a
        sensor returns a target once per look, so a second detection beyond the gate
        is another target (in a dense crowd, 50-150 m from its neighbour, it would
        otherwise never get a track) or clutter, which the track score weighs.
        """
        free = np.ones(len(batch), dtype=bool)
        free[detection] = False
        its_return = ~hit[pairs.track] | (pairs.d2 <= self._gamma)
        claimed = (self.tracks.status[rows[pairs.track]] == CONFIRMED) & its_return
        free[pairs.detection[claimed]] = False
        new = free.nonzero()[0]
        none = np.empty(0, dtype=np.int64)
        # Revival weighs a detection against the track score; hit counting has none.
        revived_ids = none
        if new.size and len(self.lost) and self.config.lifecycle == "score":
            revived = revive_into(self.tracks, self.lost, batch, new, (pd, clutter, confirm_at),
                                  self._accel_var, self._gamma, self._thresholds.ceiling)
            revived_ids = revived.ids
            if revived.detection.size:  # setdiff1d costs 10 us even with nothing to remove
                new = np.setdiff1d(new, revived.detection, assume_unique=True)
        self.stats["revived"] += revived_ids.size
        if new.size == 0:  # (every detection taken: the tentative count is not needed)
            return revived_ids, none
        tentative = int(np.count_nonzero(self.tracks.status[: self.tracks.n] == TENTATIVE))
        room = max(0, min(self.config.max_new_per_batch, self.config.max_tentative - tentative))
        if new.size > room:
            self.stats["initiations_refused"] += new.size - room
            new = new[:room]
        if new.size == 0:
            return revived_ids, none
        x = np.zeros((4, new.size))
        x[:2] = batch.z[new].T
        P = np.zeros((4, 4, new.size))
        P[:2, :2] = batch.R[new].transpose(1, 2, 0)
        P[2, 2] = P[3, 3] = self.config.init_velocity_std**2
        first = self.tracks.n
        score = existence.initial_score(self.config.new_target_density, clutter)
        ids = self.tracks.add(x, P, batch.t, score)
        if batch.cls is not None:
            weight = np.ones(new.size) if batch.conf is None else batch.conf[new]
            self.tracks.class_evidence[batch.cls[new], first + np.arange(new.size)] = weight
        self.stats["initiated"] += new.size
        return revived_ids, ids

    def _delete(self, rows: np.ndarray) -> np.ndarray:
        """Delete failed, lost and diverged tracks; return their ids (ascending).

        The existence tests only concern the tracks this batch could have seen; the
        coasting and uncertainty tests run over the whole table once per
        ``SWEEP_INTERVAL``, so a small drone frame does not scan every track.
        """
        tracks, cfg, now = self.tracks, self.config, self.latest_time
        failed = lifecycle.failed(tracks, rows, cfg, self._thresholds, now)
        if (self._superseded.size == 0 and now - self._last_sweep < SWEEP_INTERVAL
                and now - self._last_merge < MERGE_INTERVAL
                and not any(mask.any() for mask in failed.values())):
            for name in failed:  # nothing to delete (most small batches): counted as 0
                self.stats[f"deleted_{name}"] += 0
            return np.empty(0, dtype=np.int64)
        reasons = {name: rows[mask] for name, mask in failed.items()}
        if now - self._last_sweep >= SWEEP_INTERVAL:
            self._last_sweep = now
            stale = lifecycle.stale(tracks, cfg, self._accel_var, now)
            reasons.update({name: np.flatnonzero(mask) for name, mask in stale.items()})
        if now - self._last_merge >= MERGE_INTERVAL:
            self._last_merge = now
            confirmed = np.flatnonzero(tracks.status == CONFIRMED)
            reasons["duplicate"] = confirmed[duplicates(
                tracks.x[:, confirmed].T, tracks.P[:, :, confirmed].transpose(2, 0, 1),
                tracks.t_born[confirmed], tracks.t[confirmed], now, self._accel_var,
            )]
        doomed = np.zeros(tracks.n, dtype=bool)
        doomed[self._superseded] = True
        for reason, rows_of in reasons.items():  # a handful of reasons, not a loop per track
            fresh = rows_of[~doomed[rows_of]]
            self.stats[f"deleted_{reason}"] += fresh.size
            doomed[fresh] = True
        if not doomed.any():
            return np.empty(0, dtype=np.int64)
        dead = np.flatnonzero(doomed)
        # A superseded row goes silently: its id lives on in the row that continues it.
        doomed[self._superseded] = False
        reported = np.flatnonzero(doomed)
        lost = reported[tracks.status[reported] == CONFIRMED]
        if lost.size:  # most deletions are tentative tracks: seven gathers saved
            self.lost.add(
                tracks.id[lost].copy(),
                tracks.x[:, lost].T.copy(),
                tracks.P[:, :, lost].transpose(2, 0, 1).copy(),
                tracks.t[lost].copy(),
                tracks.score[lost].copy(),
                tracks.t_born[lost].copy(),
                tracks.t_hit[lost].copy(),
            )
        ids = np.sort(tracks.id[reported])
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
        mu = tracks.mu[:, rows].copy() if self.config.imm else None
        return TrackSnapshot(tracks.id[rows].copy(), x, P, t, cls, conf, mu)

    def confirmed(self, at: float | None = None) -> TrackSnapshot:
        """Ids, states and covariances of the confirmed tracks (see :meth:`snapshot`)."""
        return self.snapshot(confirmed_only=True, at=at)

    # -- checkpoints ----------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray | int | float]:
        """Everything needed to resume tracking (see :meth:`load_state_dict`)."""
        state: dict[str, np.ndarray | int | float] = dict(self.tracks.state_dict())
        state.update(self.lost.state_dict())
        state["latest_time"] = float(self.latest_time)
        state["last_sweep"] = float(self._last_sweep)
        state["last_merge"] = float(self._last_merge)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray | int | float]) -> None:
        """Resume from :meth:`state_dict`, also one written by an older version.

        Missing per-track columns get defaults: a confirmed track without a usable
        score (none in the checkpoint, or a row appended by crash recovery) starts at
        the score ceiling, as if just seen well.
        """
        self.tracks = TrackTable.from_state_dict(state)  # type: ignore[arg-type]
        self.latest_time = float(state["latest_time"])  # type: ignore[arg-type]
        self._last_sweep = float(state.get("last_sweep", -np.inf))  # type: ignore[arg-type]
        self._last_merge = float(state.get("last_merge", -np.inf))  # type: ignore[arg-type]
        tracks = self.tracks
        unset = (tracks.status == CONFIRMED) & (tracks.score < self._thresholds.confirm)
        tracks.score[unset] = self._thresholds.ceiling
        # Rows whose IMM modes do not add up to the combined state (an older checkpoint
        # without modes, or rows that crash recovery appended or moved) start every mode
        # at the combined state.
        mixed = np.einsum("jn,jan->an", tracks.mu, tracks.x_m)
        stale = ~(np.abs(tracks.mu.sum(axis=0) - 1.0) < 1e-6) | (tracks.P_m[0, 0, 0] <= 0)
        scale = 1.0 + np.abs(tracks.x).max(axis=0)
        stale |= ~(np.abs(mixed - tracks.x).max(axis=0) <= 1e-6 * scale)
        motion.reset_modes(tracks, np.flatnonzero(stale), fresh=True)
        self.lost = LostTracks(self.config.reacquire_probability)
        self.lost.load_state_dict(state)


__all__ = ["BatchResult", "CLASSES", "Tracker", "TrackerConfig", "TrackSnapshot"]
