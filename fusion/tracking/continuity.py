r"""Track continuity: a new track confirmed where a recently lost one predicts takes its id.

A target missed a few times in a row, or one that left every sensor's coverage for
longer than its prediction was useful, loses its track; when it is found again a new
track starts on it. To an operator that is the same target under a new id. The lost
tracks of the last ``window`` seconds are kept here (state, covariance, time: a few
hundred rows at most, bounded by ``capacity``) and every newly confirmed track is
tested against them by track-to-track association on the full kinematic state
(Bar-Shalom, Willett, Tian, *Tracking and Data Fusion*, 2011, sec. 9.2):

.. math:: d^2 = (x_n - \hat x_l)' (P_n + \hat P_l)^{-1} (x_n - \hat x_l) \le \gamma_4,

with ``\hat x_l, \hat P_l`` the lost track predicted to the new track's time (the two
estimates are treated as independent: the new track uses none of the lost one's
detections). Pairs inside the chi-square gate (4 degrees of freedom) are settled one to
one by the same global assignment as detections, on ``d^2 + ln |S|``.
"""

from __future__ import annotations

import functools

import numpy as np

from fusion.tracking import kalman
from fusion.tracking.association import assign
from fusion.tracking.gating import gate, gate_threshold


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

    def __len__(self) -> int:
        return int(self.id.shape[0])

    def add(self, ids: np.ndarray, x: np.ndarray, P: np.ndarray, t: np.ndarray) -> None:
        """Remember deleted tracks: ids (K,), x (K, 4), P (K, 4, 4), state times t (K,)."""
        if ids.size == 0:
            return
        self.id = np.concatenate([self.id, ids])[-self.capacity :]
        self.x = np.concatenate([self.x, x])[-self.capacity :]
        self.P = np.concatenate([self.P, P])[-self.capacity :]
        self.t = np.concatenate([self.t, t])[-self.capacity :]

    def _keep(self, keep: np.ndarray) -> None:
        self.id, self.x, self.P, self.t = self.id[keep], self.x[keep], self.P[keep], self.t[keep]

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
        x_l, P_l = kalman.predict(self.x, self.P, t - self.t, accel_var)
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
        old_ids = self.id[lost].copy()
        keep = np.ones(len(self), dtype=bool)
        keep[lost] = False
        self._keep(keep)
        return new, old_ids

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"lost_id": self.id.copy(), "lost_x": self.x.copy(),
                "lost_P": self.P.copy(), "lost_t": self.t.copy()}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; a state without lost tracks leaves none."""
        if "lost_id" not in state:
            return
        self.id = np.asarray(state["lost_id"], dtype=np.int64).copy()
        self.x = np.asarray(state["lost_x"], dtype=float).reshape(-1, 4).copy()
        self.P = np.asarray(state["lost_P"], dtype=float).reshape(-1, 4, 4).copy()
        self.t = np.asarray(state["lost_t"], dtype=float).copy()
        # Rows a state editor padded with zeros (no id, no covariance) are no tracks.
        self._keep((self.id > 0) & (self.P[:, 0, 0] > 0) & (self.P[:, 1, 1] > 0))


@functools.lru_cache(maxsize=8)
def _gate_4dof(probability: float) -> float:
    return gate_threshold(probability, dof=4)  # scipy's ppf costs ~0.5 ms a call


def duplicates(
    x: np.ndarray, P: np.ndarray, born: np.ndarray, t: np.ndarray, now: float,
    accel_var: float, probability: float = 0.99,
) -> np.ndarray:
    """Tracks that duplicate an older track on the same target: indices to delete.

    Two tracks fed by different sensors on one target (each radar's detection going
    to whichever is nearer) can both stay alive for minutes. Pairs whose states,
    predicted to ``now``, agree within the ``probability`` gate of a 4-dof chi-square
    test on ``P_a + P_b`` (targets of a convoy 60 m apart, each tracked to a few
    metres, stay apart)
    are one target; the younger track goes.

    Parameters
    ----------
    x : ndarray, shape (N, 4)
    P : ndarray, shape (N, 4, 4)
    born : ndarray, shape (N,)
        Birth time of each track (the older one is kept).
    t : ndarray, shape (N,)
        Time of each state.

    Returns
    -------
    drop : ndarray, intp
        Indices into the N tracks.
    """
    if x.shape[0] < 2:
        return np.empty(0, dtype=np.intp)
    position = x[:, :2] + x[:, 2:] * (now - t)[:, None]
    gamma = _gate_4dof(probability)
    near = gate(position, P[:, :2, :2], position, P[:, :2, :2], gamma)
    pair = near.track < near.detection  # each unordered pair once, no self-pairs
    a, b = near.track[pair], near.detection[pair]
    if a.size == 0:
        return np.empty(0, dtype=np.intp)
    rows = np.unique(np.concatenate([a, b]))
    xp, Pp = kalman.predict(x[rows], P[rows], now - t[rows], accel_var)
    ia, ib = np.searchsorted(rows, a), np.searchsorted(rows, b)
    y = xp[ia] - xp[ib]
    S = Pp[ia] + Pp[ib]
    d2 = np.einsum("gi,gi->g", y, np.linalg.solve(S, y[..., None])[..., 0])  # y' S^-1 y
    same = d2 <= gamma
    younger = np.where(born[a] <= born[b], b, a)[same]
    return np.unique(younger)
