r"""The plain reference tracker: one ``filterpy.kalman.KalmanFilter`` per track.

This is the "filterpy loop" baseline that the benchmarks and the GOSPA comparisons
measure bufferzone's vectorised tracker against. It is deliberately straightforward —
a Python object and a Python loop per track, a dense cost matrix — so that it is easy
to check by reading; it is not meant to be fast.

Per batch of detections at time :math:`t`:

1. **Coverage.** Each track's position is predicted to :math:`t` (without committing);
   tracks whose predicted position lies outside the batch's coverage polygon are left
   alone: neither predicted, updated nor charged a miss.
2. **Predict** the covered tracks with the constant-velocity model, state
   :math:`x = [e, n, \dot e, \dot n]`:

   .. math::

       F = \begin{bmatrix} I_2 & \Delta t\, I_2 \\ 0 & I_2 \end{bmatrix}, \qquad
       Q = \sigma_a^2 \begin{bmatrix} \tfrac{\Delta t^4}{4} I_2 & \tfrac{\Delta t^3}{2} I_2 \\
           \tfrac{\Delta t^3}{2} I_2 & \Delta t^2 I_2 \end{bmatrix}

   (``Q_discrete_white_noise(dim=2, block_size=2, order_by_dim=False)``, the
   piecewise-constant white acceleration model, Bar-Shalom et al. 2001, §6.3.3).
3. **Gate** each (track, detection) pair on the Mahalanobis distance
   :math:`d^2 = y^\top S^{-1} y`, :math:`y = z - Hx`, :math:`S = HPH^\top + R`, against
   the chi-square quantile with 2 degrees of freedom at ``gate_probability``.
4. **Assign** by global nearest neighbour: ``linear_sum_assignment`` on the dense cost
   :math:`d^2 + \ln\det S` (the negative log-likelihood up to a constant), with a large
   cost for pairs outside the gate; assigned pairs outside the gate are dropped.
5. **Update** assigned tracks (filterpy's Joseph-form update); covered tracks left
   unassigned take a miss.
6. **Manage tracks.** A tentative track is confirmed once it has ``confirm_m`` hits in
   its last ``confirm_n`` covered scans (the initiating detection counts as the first),
   and deleted once that can no longer happen. A confirmed track is deleted after
   ``max_misses`` consecutive misses, or when it has not been updated for more than
   ``max_coast_time`` seconds.
7. **Initiate** a tentative track on every unassigned detection (one-point
   initiation): position from the detection with covariance :math:`R`, velocity 0
   with standard deviation ``init_velocity_std`` per axis.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np
import shapely
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from fusion.messages import DetectionBatch

# Cost of an out-of-gate pair: far above any gated d^2 + ln det S, so the solver only
# uses such a pair when it has to, and we then drop it.
_UNGATED_COST = 1e9

# H picks the position out of [e, n, ve, vn].
_H = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])


def _F(dt: float) -> np.ndarray:
    """Constant-velocity transition over ``dt`` seconds, shape (4, 4)."""
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    return F


@dataclass(eq=False)
class _Track:
    """One track: its own filter and its life counters."""

    track_id: int
    kf: KalmanFilter
    t: float  # time the filter's state refers to
    t_last_hit: float
    history: deque[bool]  # hit/miss over the last confirm_n covered scans
    confirmed: bool = False
    misses: int = 0  # consecutive, counted only in coverage
    hits: int = 1


class FilterpyLoopTracker:
    """GNN multi-target tracker built from one filterpy ``KalmanFilter`` per track.

    Parameters
    ----------
    accel_std : float
        Standard deviation of the white acceleration noise, m/s^2.
    gate_probability : float
        Probability mass of the chi-square gate (2 degrees of freedom).
    init_velocity_std : float
        Standard deviation of each velocity component of a new track, m/s.
    confirm_m, confirm_n : int
        Confirm a track with ``confirm_m`` hits in its last ``confirm_n`` covered scans.
    max_misses : int
        Delete a confirmed track after this many consecutive misses in coverage.
    max_coast_time : float
        Delete any track not updated for longer than this, seconds.
    """

    def __init__(
        self,
        accel_std: float = 1.0,
        gate_probability: float = 0.99,
        init_velocity_std: float = 20.0,
        confirm_m: int = 2,
        confirm_n: int = 3,
        max_misses: int = 3,
        max_coast_time: float = 10.0,
    ):
        if not 0 < gate_probability < 1:
            raise ValueError(f"gate_probability must be in (0, 1), got {gate_probability}")
        if not 1 <= confirm_m <= confirm_n:
            raise ValueError(f"need 1 <= confirm_m <= confirm_n, got {confirm_m}, {confirm_n}")
        self.accel_std = float(accel_std)
        self.gate = float(chi2.ppf(gate_probability, df=2))
        self.init_velocity_std = float(init_velocity_std)
        self.confirm_m = int(confirm_m)
        self.confirm_n = int(confirm_n)
        self.max_misses = int(max_misses)
        self.max_coast_time = float(max_coast_time)
        self.tracks: list[_Track] = []
        self._next_id = itertools.count(1)
        self._t: float | None = None

    # ------------------------------------------------------------------ the scan

    def process(self, batch: DetectionBatch) -> None:
        """Run one scan: predict, gate, assign, update, manage and initiate tracks.

        Parameters
        ----------
        batch : DetectionBatch
            Detections at time ``batch.t`` (``z`` (M, 2), ``R`` (M, 2, 2)) and the
            sensor's coverage polygon (K, 2) or None for the whole area.

        Raises
        ------
        ValueError
            If the batch is older than one already processed (this baseline has no
            out-of-sequence handling).
        """
        t = float(batch.t)
        if self._t is not None and t < self._t:
            raise ValueError(f"batch at t={t} is older than the last one processed ({self._t})")
        self._t = t
        z = np.asarray(batch.z, dtype=np.float64).reshape(-1, 2)
        R = np.asarray(batch.R, dtype=np.float64).reshape(-1, 2, 2)

        covered = self._covered(t, batch.coverage)
        for trk in covered:
            self._predict(trk, t)
        cost, gated = self._cost(covered, z, R)
        rows, cols = linear_sum_assignment(cost)
        keep = gated[rows, cols]
        rows, cols = rows[keep], cols[keep]

        hit = np.zeros(len(covered), dtype=bool)
        hit[rows] = True
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            trk = covered[i]
            trk.kf.update(z[j], R=R[j])
            trk.t_last_hit = t
            trk.misses = 0
            trk.hits += 1
            trk.history.append(True)
        for i in np.flatnonzero(~hit).tolist():
            covered[i].misses += 1
            covered[i].history.append(False)

        self._confirm_and_delete(t)
        assigned = np.zeros(z.shape[0], dtype=bool)
        assigned[cols] = True
        for j in np.flatnonzero(~assigned).tolist():
            self._initiate(t, z[j], R[j])

    # ------------------------------------------------------------------ steps

    def _covered(self, t: float, coverage: np.ndarray | None) -> list[_Track]:
        """Tracks whose position predicted to ``t`` lies in the coverage polygon."""
        if coverage is None or not self.tracks:
            return list(self.tracks)
        # x_pred = F x, position only; the filters themselves are not touched yet.
        pos = np.array([(_F(t - trk.t) @ trk.kf.x)[:2, 0] for trk in self.tracks])
        inside = shapely.intersects_xy(shapely.Polygon(coverage), pos[:, 0], pos[:, 1])
        return [trk for trk, ok in zip(self.tracks, inside.tolist(), strict=True) if ok]

    def _predict(self, trk: _Track, t: float) -> None:
        dt = t - trk.t
        if dt > 0:
            Q = Q_discrete_white_noise(
                dim=2, dt=dt, var=self.accel_std**2, block_size=2, order_by_dim=False
            )
            trk.kf.predict(F=_F(dt), Q=Q)
            trk.t = t

    def _cost(
        self, tracks: list[_Track], z: np.ndarray, R: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense GNN cost (N, M) and gate mask (N, M); one Python iteration per track."""
        cost = np.full((len(tracks), z.shape[0]), _UNGATED_COST)
        gated = np.zeros(cost.shape, dtype=bool)
        if not tracks or z.shape[0] == 0:
            return cost, gated
        for i, trk in enumerate(tracks):
            x, P = trk.kf.x[:, 0], trk.kf.P
            # y = z - H x, for every detection
            y = z - _H @ x
            # S = H P H' + R, one (2, 2) per detection
            S = _H @ P @ _H.T + R
            # d^2 = y' S^-1 y, solved rather than inverted
            d2 = np.einsum("mi,mi->m", y, np.linalg.solve(S, y[:, :, None])[:, :, 0])
            ok = d2 <= self.gate
            _, logdet = np.linalg.slogdet(S)
            cost[i, ok] = d2[ok] + logdet[ok]
            gated[i] = ok
        return cost, gated

    def _confirm_and_delete(self, t: float) -> None:
        survivors = []
        for trk in self.tracks:
            if not trk.confirmed and sum(trk.history) >= self.confirm_m:
                trk.confirmed = True
            if trk.confirmed:
                dead = trk.misses >= self.max_misses
            else:
                # Tentative: dead once the window can no longer hold confirm_m hits.
                remaining = self.confirm_n - len(trk.history)
                dead = sum(trk.history) + remaining < self.confirm_m
            if dead or t - trk.t_last_hit > self.max_coast_time:
                continue
            survivors.append(trk)
        self.tracks = survivors

    def _initiate(self, t: float, z: np.ndarray, R: np.ndarray) -> None:
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.x = np.array([[z[0]], [z[1]], [0.0], [0.0]])
        kf.P = np.zeros((4, 4))
        kf.P[:2, :2] = R
        kf.P[2:, 2:] = np.eye(2) * self.init_velocity_std**2
        kf.H = _H.copy()
        kf.R = R.copy()
        history: deque[bool] = deque([True], maxlen=self.confirm_n)
        self.tracks.append(_Track(next(self._next_id), kf, t, t, history))

    # ------------------------------------------------------------------ output

    def confirmed(self, t: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Confirmed tracks.

        Parameters
        ----------
        t : float, optional
            Predict copies of the states to this time (the tracks are not changed).
            By default each state is at its own last time (tracks outside recent
            coverage were not predicted).

        Returns
        -------
        ids : ndarray, shape (N,), int64
        x : ndarray, shape (N, 4), float64
            East, north, v_east, v_north.
        P : ndarray, shape (N, 4, 4), float64
        """
        tracks = [trk for trk in self.tracks if trk.confirmed]
        ids = np.array([trk.track_id for trk in tracks], dtype=np.int64)
        x = np.empty((len(tracks), 4))
        P = np.empty((len(tracks), 4, 4))
        for i, trk in enumerate(tracks):
            x[i], P[i] = trk.kf.x[:, 0], trk.kf.P
            if t is not None and t != trk.t:
                dt = t - trk.t
                F = _F(dt)
                Q = Q_discrete_white_noise(
                    dim=2, dt=dt, var=self.accel_std**2, block_size=2, order_by_dim=False
                )
                # x = F x ; P = F P F' + Q
                x[i] = F @ x[i]
                P[i] = F @ P[i] @ F.T + Q
        return ids, x, P

    def __len__(self) -> int:
        """Number of live tracks, tentative and confirmed."""
        return len(self.tracks)
