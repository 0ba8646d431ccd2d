r"""Lost tracks: recently deleted confirmed tracks, kept to give their ids back.

A target missed a few times in a row, or one that left every sensor's coverage for
longer than its prediction was useful, loses its track. Its last state, covariance,
time and track score are kept here for ``reacquire_window`` seconds (a few hundred rows
at most, bounded by ``capacity``), and it can come back two ways:

* **revived** (:meth:`LostTracks.revive`): a lost track is a target whose existence fell
  below the confirmation threshold, not one known to be gone. A detection where it
  predicts adds its likelihood to the score it had, like any hit; where that reaches
  the confirmation threshold the track carries on at once, under its old id. Every
  look that finds nothing where it predicts lowers the score
  (:meth:`LostTracks.charge_misses`), so a target gone for good stops being revivable;
* **claimed** (:meth:`LostTracks.claim`): a newly confirmed track is tested against them
  by track-to-track association on the full kinematic state (Bar-Shalom, Willett, Tian,
  *Tracking and Data Fusion*, 2011, sec. 9.2):

  .. math:: d^2 = (x_n - \hat x_l)' (P_n + \hat P_l)^{-1} (x_n - \hat x_l) \le \gamma_4,

  with ``\hat x_l, \hat P_l`` the lost track predicted to the new track's time (the two
  estimates are treated as independent: the new track uses none of the lost one's
  detections). Pairs inside the chi-square gate (4 degrees of freedom) are settled one
  to one by the same global assignment as detections, on ``d^2 + ln |S|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fusion.tracking import existence, kalman
from fusion.tracking.association import assign
from fusion.tracking.coverage import rows_in_polygon
from fusion.tracking.gating import gate, gate_threshold
from fusion.tracking.track_table import CONFIRMED, TrackTable

if TYPE_CHECKING:
    from fusion.messages import DetectionBatch


@dataclass(frozen=True)
class Revived:
    """Lost tracks brought back by one detection each (:meth:`LostTracks.revive`).

    Attributes
    ----------
    ids : ndarray, shape (K,), int64
        Their old ids.
    detection : ndarray, shape (K,), intp
        Index of the detection that brought each back.
    x : ndarray, shape (K, 4)
    P : ndarray, shape (K, 4, 4)
        Each lost track predicted to the batch time and updated with its detection.
    score : ndarray, shape (K,)
        Track score after that detection.
    born : ndarray, shape (K,)
        When each track was first started: a revived track is not a young one.
    """

    ids: np.ndarray
    detection: np.ndarray
    x: np.ndarray
    P: np.ndarray
    score: np.ndarray
    born: np.ndarray

    @classmethod
    def none(cls) -> Revived:
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.intp),
                   np.empty((0, 4)), np.empty((0, 4, 4)), np.empty(0), np.empty(0))


class LostTracks:
    """Recently deleted confirmed tracks, batch-first arrays.

    Parameters
    ----------
    probability : float
        Gate probability of the 4-dof chi-square test of :meth:`claim`.
    capacity : int
        At most this many are kept; the oldest losses go first.
    """

    def __init__(self, probability: float = 0.999, capacity: int = 4096):
        self.capacity = capacity
        self.gamma = gate_threshold(probability, dof=4)
        self.id = np.empty(0, dtype=np.int64)
        self.x = np.empty((0, 4))
        self.P = np.empty((0, 4, 4))
        self.t = np.empty(0)
        self.score = np.empty(0)
        self.born = np.empty(0)
        self.t_hit = np.empty(0)

    def __len__(self) -> int:
        return int(self.id.shape[0])

    def add(
        self, ids: np.ndarray, x: np.ndarray, P: np.ndarray, t: np.ndarray, score: np.ndarray,
        born: np.ndarray | None = None, t_hit: np.ndarray | None = None,
    ) -> None:
        """Remember deleted tracks: ids (K,), x (K, 4), P (K, 4, 4), state times t (K,),
        track scores at deletion (K,), birth times (K,; default: ``t``) and times of
        their last detections (K,; default: ``t``)."""
        if ids.size == 0:
            return
        self.id = np.concatenate([self.id, ids])[-self.capacity :]
        self.x = np.concatenate([self.x, x])[-self.capacity :]
        self.P = np.concatenate([self.P, P])[-self.capacity :]
        self.t = np.concatenate([self.t, t])[-self.capacity :]
        self.score = np.concatenate([self.score, score])[-self.capacity :]
        self.born = np.concatenate([self.born, t if born is None else born])[-self.capacity :]
        self.t_hit = np.concatenate([self.t_hit, t if t_hit is None else t_hit])[-self.capacity :]

    def _keep(self, keep: np.ndarray) -> None:
        self.id, self.x, self.P = self.id[keep], self.x[keep], self.P[keep]
        self.t, self.score, self.born = self.t[keep], self.score[keep], self.born[keep]
        self.t_hit = self.t_hit[keep]

    def pop(self, index: np.ndarray) -> np.ndarray:
        """Forget the lost tracks ``index`` (intp, into the current rows); return their ids."""
        ids = self.id[index].copy()
        keep = np.ones(len(self), dtype=bool)
        keep[index] = False
        self._keep(keep)
        return ids

    def expire(self, now: float, window: float) -> None:
        """Forget tracks whose state is more than ``window`` seconds older than ``now``."""
        if self.t.size and self.t.min() < now - window:
            self._keep(self.t >= now - window)

    def claim(
        self, x: np.ndarray, P: np.ndarray, t: float, accel_var: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Match new tracks to lost ones; the matched lost tracks are forgotten.

        Parameters
        ----------
        x : ndarray, shape (K, 4)
        P : ndarray, shape (K, 4, 4)
            The newly confirmed tracks, at time ``t``.
        t : float
        accel_var : float
            Process noise of the prediction of the lost tracks, (m/s^2)^2.

        Returns
        -------
        new, old_ids : ndarray, shape (A,)
            Index into the K new tracks, and the id each one takes back.
        """
        empty = np.empty(0, dtype=np.intp)
        if len(self) == 0 or x.shape[0] == 0:
            return empty, np.empty(0, dtype=np.int64)
        # kalman.predict's kernel on transposed views: its batch-first copies back are
        # not needed for the few rows read below (the same numbers, to the bit).
        x_l, P_l = kalman.predict_batch_last(
            self.x.T, self.P.transpose(1, 2, 0), t - self.t, accel_var
        )
        x_l, P_l = x_l.T, P_l.transpose(2, 0, 1)
        # Position pre-gate (it has the spatial index), then the exact 4-dof test.
        gamma = self.gamma
        near = gate(x[:, :2], P[:, :2, :2], x_l[:, :2], P_l[:, :2, :2], gamma)
        if len(near) == 0:
            return empty, np.empty(0, dtype=np.int64)
        y = x[near.track] - x_l[near.detection]  # (G, 4)
        S = P[near.track] + P_l[near.detection]  # (G, 4, 4)
        d2 = np.einsum("gi,gi->g", y, np.linalg.solve(S, y[..., None])[..., 0])  # y' S^-1 y
        _, log_det_S = np.linalg.slogdet(S)
        inside = d2 <= gamma
        if not inside.any():
            return empty, np.empty(0, dtype=np.int64)
        cost = (d2 + log_det_S)[inside]
        new, lost = assign(
            x.shape[0], len(self), near.track[inside], near.detection[inside], cost,
            np.full(x.shape[0], cost.max() + 1.0),
        )
        return new, self.pop(lost)

    def revive(
        self, z: np.ndarray, R: np.ndarray, t: float, accel_var: float, gamma: float,
        pd: float, clutter: float, confirm_at: float,
    ) -> Revived:
        """Lost tracks that one detection each brings back to confirmed at once.

        A lost track is a target whose existence fell below the confirmation threshold
        (its score at deletion, ``L_l``), not one known to be gone. A detection where it
        predicts is evidence for it like any hit (``fusion.tracking.existence``):
        ``L = L_l + ln [P_D N(y; 0, S) / lambda]`` with ``S`` the lost track's predicted
        innovation covariance, which grows with the time lost, so a long-lost track
        needs a closer detection. Where ``L`` reaches ``confirm_at`` the track carries
        on under its old id, updated with the detection, instead of a new tentative
        track that needs a second detection. Pairs are settled one to one on
        ``d^2 + ln |S|``; the revived tracks are forgotten here.

        Parameters
        ----------
        z : ndarray, shape (M, 2)
        R : ndarray, shape (M, 2, 2)
            Detections no live track took, at time ``t``.
        accel_var : float
            Process noise of the lost tracks' prediction, (m/s^2)^2.
        gamma : float
            Chi-square gate (2 dof) of the detection-to-lost-track test.
        pd, clutter, confirm_at : float
            The batch's detection probability, clutter density (per m^2) and
            confirmation threshold.
        """
        if len(self) == 0 or z.shape[0] == 0:
            return Revived.none()
        rows = self._hopeful(z, R, t, accel_var, gamma, pd, clutter, confirm_at)
        if rows.size == 0:
            return Revived.none()
        x_l, P_l = kalman.predict(self.x[rows], self.P[rows], t - self.t[rows], accel_var)
        pairs = gate(x_l[:, :2], P_l[:, :2, :2], z, R, gamma)
        if len(pairs) == 0:
            return Revived.none()
        score = self.score[rows[pairs.track]] + existence.hit_score(
            pd, clutter, pairs.d2, pairs.log_det_S
        )
        pairs = pairs.subset(score >= confirm_at)
        if len(pairs) == 0:
            return Revived.none()
        cost = pairs.d2 + pairs.log_det_S
        found, detection = assign(
            rows.size, z.shape[0], pairs.track, pairs.detection,
            cost, np.full(rows.size, float(cost.max()) + 1.0),
        )
        k = np.searchsorted(pairs.track * z.shape[0] + pairs.detection,
                            found * z.shape[0] + detection)
        x, P = kalman.update(x_l[found], P_l[found], z[detection], R[detection])
        lost = rows[found]
        revived = Revived(self.id[lost].copy(), detection, x, P,
                          self.score[lost] + existence.hit_score(
                              pd, clutter, pairs.d2[k], pairs.log_det_S[k]),
                          self.born[lost].copy())
        self.pop(lost)
        return revived

    def _hopeful(
        self, z: np.ndarray, R: np.ndarray, t: float, accel_var: float, gamma: float,
        pd: float, clutter: float, confirm_at: float,
    ) -> np.ndarray:
        """Lost tracks (indices) that some detection could revive, by two cheap bounds.

        Most batches revive nothing, and the exact test (prediction, gate, likelihood)
        costs more than the batch's own initiation. A pair can pass it only if

        * the lost track's score plus the best hit any of these detections can give
          reaches ``confirm_at``: the hit is largest at ``d^2 = 0`` and ``|S| >= |R|``
          (``S = P + R``), so the smallest ``|R|`` bounds it; and
        * the detection lies within the gate's reach, ``|y|^2 <= gamma tr S``
          (``lambda_max <= trace``), with ``tr S`` of the straight-line prediction in
          closed form (the same prediction the exact test makes).

        Neither drops a pair the exact test would keep (1 % and 1 m^2 of slack for
        rounding). The distance bound is skipped where lost tracks times detections
        would make a large array; the exact gate has a spatial index for that.
        """
        det_R = R[:, 0, 0] * R[:, 1, 1] - R[:, 0, 1] * R[:, 1, 0]
        best_hit = existence.hit_score(
            pd, clutter, np.zeros(1), np.log(np.maximum(det_R.min(keepdims=True), 1e-300))
        )[0]
        rows = np.flatnonzero(self.score + best_hit >= confirm_at)
        if rows.size == 0 or rows.size * z.shape[0] > 1_000_000:
            return rows
        dt = t - self.t[rows]
        x, P = self.x[rows], self.P[rows]
        tr_S = (P[:, 0, 0] + P[:, 1, 1] + 2.0 * dt * (P[:, 0, 2] + P[:, 1, 3])
                + dt**2 * (P[:, 2, 2] + P[:, 3, 3]) + accel_var * dt**4 / 2.0
                + float((R[:, 0, 0] + R[:, 1, 1]).max()))
        east, north = x[:, 0] + x[:, 2] * dt, x[:, 1] + x[:, 3] * dt
        d2 = (z[:, 0] - east[:, None]) ** 2 + (z[:, 1] - north[:, None]) ** 2  # (L, M)
        return rows[(d2 <= 1.01 * gamma * tr_S[:, None] + 1.0).any(axis=1)]

    def charge_misses(
        self, t: float, coverage: np.ndarray | None, pd: float, gate_probability: float
    ) -> None:
        """Book a batch that did not see the lost tracks it covered.

        A lost track's score keeps falling as sensors look where it should be and find
        nothing (``existence.miss_score``), as a live track's would: a target gone for
        good stops being revivable after a few looks, while one merely hidden (out of
        every footprint) keeps its score. Positions are predicted on the straight line,
        which is all a footprint test needs.

        Parameters
        ----------
        t : float
            The batch time.
        coverage : ndarray, shape (K, 2), optional
            The batch's footprint (None: it sees everywhere).
        pd, gate_probability : float
        """
        if len(self) == 0:
            return
        if coverage is None:
            seen: slice | np.ndarray = slice(None)
        else:
            dt = t - self.t
            seen = rows_in_polygon(
                self.x[:, 0] + self.x[:, 2] * dt, self.x[:, 1] + self.x[:, 3] * dt, coverage
            )
        self.score[seen] += existence.miss_score(pd, gate_probability, 1.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"lost_id": self.id.copy(), "lost_x": self.x.copy(),
                "lost_P": self.P.copy(), "lost_t": self.t.copy(), "lost_score": self.score.copy(),
                "lost_born": self.born.copy(), "lost_t_hit": self.t_hit.copy()}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; a state without lost tracks leaves none."""
        if "lost_id" not in state:
            return
        self.id = np.asarray(state["lost_id"], dtype=np.int64).copy()
        self.x = np.asarray(state["lost_x"], dtype=float).reshape(-1, 4).copy()
        self.P = np.asarray(state["lost_P"], dtype=float).reshape(-1, 4, 4).copy()
        self.t = np.asarray(state["lost_t"], dtype=float).copy()
        # A checkpoint from before lost tracks kept their score: none of them revives
        # on one detection (they can still be claimed by a confirmed track).
        self.score = np.asarray(
            state.get("lost_score", np.full(self.t.shape, -np.inf)), dtype=float
        ).reshape(self.t.shape).copy()
        self.born = np.asarray(state.get("lost_born", self.t), dtype=float).reshape(
            self.t.shape).copy()
        # Without last-detection times (an older checkpoint), the state time stands in:
        # such a track can only be taken over as if it had not coasted.
        self.t_hit = np.asarray(state.get("lost_t_hit", self.t), dtype=float).reshape(
            self.t.shape).copy()
        # Rows a state editor padded with zeros (no id, no covariance) are no tracks.
        self._keep((self.id > 0) & (self.P[:, 0, 0] > 0) & (self.P[:, 1, 1] > 0))


def revive_into(
    tracks: TrackTable, lost: LostTracks, batch: DetectionBatch, new: np.ndarray,
    model: tuple[float, float, float], accel_var: float, gamma: float, ceiling: float,
) -> Revived:
    """Put the lost tracks that free detections revive back in the table, confirmed,
    under their old ids (:meth:`LostTracks.revive`); the tracker's initiation step.

    Parameters
    ----------
    tracks : TrackTable
    lost : LostTracks
    batch : DetectionBatch
    new : ndarray, intp
        The batch's detections that no live track took or claims.
    model : (float, float, float)
        The batch's detection probability, clutter density and confirmation threshold.
    accel_var, gamma : float
        Process noise of the lost tracks' prediction and the 2-dof gate.
    ceiling : float
        A confirmed track's score cap (``existence.Thresholds.ceiling``).

    Returns
    -------
    Revived
        With ``detection`` indexing the batch (not ``new``).
    """
    if len(lost) == 0 or new.size == 0:
        return Revived.none()
    found = lost.revive(batch.z[new], batch.R[new], batch.t, accel_var, gamma, *model)
    if found.ids.size == 0:
        return found
    det = new[found.detection]
    first = tracks.n
    tracks.add(found.x.T, found.P.transpose(1, 2, 0), batch.t)
    rows = first + np.arange(found.ids.size)
    tracks.id[rows] = found.ids
    tracks.status[rows] = CONFIRMED
    tracks.score[rows] = np.minimum(found.score, ceiling)
    tracks.t_born[rows] = found.born
    if batch.cls is not None:
        weight = np.ones(det.size) if batch.conf is None else batch.conf[det]
        tracks.class_evidence[batch.cls[det], rows] = weight
    return Revived(found.ids, det, found.x, found.P, found.score, found.born)
