"""What one zone looks at in one step: the tracks it must evaluate, and their timers.

A zone does not evaluate every confirmed track. A cheap bound over all of them --
distance to the zone's bounding box against ``FAR_SIGMAS`` position sigmas, the distance
the track's speed covers within the prediction horizon, and the loitering band -- picks
the tracks that could be inside, could breach within the horizon or could loiter; the
tracks whose timers are running or whose alert is open here are added. Beyond the bound
P(inside) is 0, no breach is due within the horizon and the track is out of the band,
so its timers are idle and stay so: it costs one comparison.

The per-track state a zone carries from step to step (:class:`ZoneState`) holds rows
only for tracks that have been near it (the side they came from) or have a timer
running.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.alerting.breach import BreachModel
from fusion.alerting.probability import FAR_SIGMAS, box_distance
from fusion.alerting.snapshot import Snapshot
from fusion.alerting.zones import Zone

__all__ = ["STATE_COLUMNS", "ZoneState", "ZoneView", "build_view"]

# Per-zone per-track columns carried from step to step (float; NaN = not running).
STATE_COLUMNS = (
    "side_from",
    "inc_on",
    "inc_off",
    "pred_on",
    "pred_off",
    "loit_e",
    "loit_n",
    "loit_t",
    "loit_off",
)
# Value of each state column for a track without a row: no side seen, no timer.
_STATE_DEFAULT = np.array([0.0] + [np.nan] * (len(STATE_COLUMNS) - 1))
# Timers whose running means the track must be evaluated even far from the zone.
_LIVE = [STATE_COLUMNS.index(c) for c in ("inc_on", "pred_on", "loit_t")]


@dataclass
class ZoneState:
    """Per-track columns one zone carries between steps.

    Attributes
    ----------
    ids : ndarray, shape (K,), int64
        Track ids, ascending.
    table : ndarray, shape (K, len(STATE_COLUMNS))
        ``side_from`` (1, -1, 0 = none seen) and the timers (NaN = not running).
    """

    ids: np.ndarray
    table: np.ndarray

    @classmethod
    def empty(cls) -> ZoneState:
        return cls(np.zeros(0, np.int64), np.zeros((0, len(STATE_COLUMNS))))

    def as_columns(self) -> dict[str, np.ndarray]:
        """Checkpoint form: ``ids`` and one array per column."""
        return {"ids": self.ids, **dict(zip(STATE_COLUMNS, self.table.T, strict=True))}

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> ZoneState:
        table = np.column_stack([np.asarray(columns[c], float) for c in STATE_COLUMNS])
        return cls(np.asarray(columns["ids"], np.int64), table.reshape(-1, len(STATE_COLUMNS)))

    def live_ids(self) -> np.ndarray:
        """Tracks with a timer running (they are evaluated wherever they are)."""
        return self.ids[~np.isnan(self.table[:, _LIVE]).all(axis=1)]

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Rows for ``ids`` (defaults where there is none), shape (M, len(STATE_COLUMNS))."""
        if self.ids.size == 0:
            return np.tile(_STATE_DEFAULT, (ids.size, 1))
        k = np.minimum(self.ids.searchsorted(ids), self.ids.size - 1)
        return np.where((self.ids[k] == ids)[:, None], self.table[k], _STATE_DEFAULT)

    def after(self, v: ZoneView, snap: Snapshot) -> ZoneState:
        """The state for the next step: the evaluated rows that carry anything, and the
        others unchanged while their track is still confirmed."""
        rows, present = snap.rows_of(self.ids)
        evaluated = np.zeros(len(snap), bool)
        evaluated[v.rows] = True
        carried = present.copy()
        carried[present] = ~evaluated[rows[present]]
        table = np.column_stack([v.col[c] for c in STATE_COLUMNS])
        keep = (table[:, 0] != 0) | ~np.isnan(table[:, 1:]).all(axis=1)
        ids = np.concatenate([self.ids[carried], v.ids[keep]])
        order = np.argsort(ids, kind="stable")
        return ZoneState(ids[order], np.vstack([self.table[carried], table[keep]])[order])


@dataclass
class ZoneView:
    """The tracks one zone evaluates this step (M of them, in snapshot order).

    Attributes
    ----------
    rows : ndarray, shape (M,), intp
        Rows of the snapshot, ascending.
    ids : ndarray, shape (M,), int64
    table : ndarray, shape (M, len(snapshot.COLUMNS))
        The snapshot's columns of these tracks (east, north, v_east, v_north, speed,
        cls, conf); ``pos``, ``vel``, ``speed``, ``cls`` and ``conf`` read it.
    p_inside : ndarray, shape (M,)
        P(inside); 0 for a track far from the zone.
    ttb : ndarray, shape (M,)
        Time to breach, s; ``inf`` when none within the horizon (or far).
    p_breach : ndarray, shape (M,)
        P(breach within the predicted-incursion horizon) (1 inside; 0 beyond reach or
        where that rule is off).
    dist : ndarray, shape (M,)
        Distance to the zone, m; ``inf`` for a track far from it.
    side : ndarray, shape (M,), int8
        Side now (1, -1); 0 for a track far from the zone.
    col : dict of str to ndarray, shape (M,)
        The ``STATE_COLUMNS`` of these tracks, advanced in place by the kind functions.
    """

    rows: np.ndarray
    ids: np.ndarray
    table: np.ndarray
    p_inside: np.ndarray
    ttb: np.ndarray
    p_breach: np.ndarray
    dist: np.ndarray
    side: np.ndarray
    col: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        self._by_id: np.ndarray | None = None
        self.pos, self.vel = self.table[:, 0:2], self.table[:, 2:4]
        self.speed = self.table[:, 4]
        self.cls = self.table[:, 5].astype(np.intp)
        self.conf = self.table[:, 6]

    def values(self, at: int) -> list[float]:
        """``FIELD_COLUMNS`` of view position ``at`` as Python floats (ttb NaN = none)."""
        ttb = float(self.ttb[at])
        east, north, ve, vn, speed, cls, conf = self.table[at].tolist()
        return [
            east,
            north,
            ve,
            vn,
            speed,
            float(self.p_inside[at]),
            ttb if ttb != np.inf else np.nan,
            float(self.p_breach[at]),
            float(self.side[at]),
            cls,
            conf,
        ]

    def values_many(self, at: np.ndarray) -> list[list[float]]:
        """:meth:`values` of several view positions ``at`` (K,), gathered column-wise."""
        ttb = self.ttb[at]
        columns = (
            self.table[at, :5].T.tolist()
            + [self.p_inside[at].tolist(), np.where(ttb == np.inf, np.nan, ttb).tolist()]
            + [self.p_breach[at].tolist()]
            + [self.side[at].astype(float).tolist()]
            + self.table[at, 5:7].T.tolist()
        )
        return [list(row) for row in zip(*columns, strict=True)]

    def by_id(self) -> np.ndarray:
        """View positions in ascending track id, shape (M,)."""
        if self._by_id is None:
            self._by_id = np.argsort(self.ids, kind="stable")
        return self._by_id

    def positions_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """View positions of ``ids``: (position (K,), found (K,) bool)."""
        if self.ids.size == 0:
            return np.zeros(ids.shape, np.intp), np.zeros(ids.shape, bool)
        order = self.by_id()
        k = order[np.minimum(self.ids.searchsorted(ids, sorter=order), self.ids.size - 1)]
        return k, self.ids[k] == ids


def build_view(
    zone: Zone,
    snap: Snapshot,
    horizon: float | None,
    band: float,
    state: ZoneState,
    open_ids: list[np.ndarray],
    breach: BreachModel | None = None,
) -> ZoneView:
    """The tracks of ``snap`` the zone must evaluate, with their geometry and timers.

    Parameters
    ----------
    zone : Zone
    snap : Snapshot
    horizon : float or None
        Time-to-breach look-ahead, s; None where predicted incursions are off (no
        time to breach is computed).
    band : float
        Loitering band (0 where loitering is off), m.
    state : ZoneState
    open_ids : list of ndarray, int64
        Tracks with an alert open in this zone.
    breach : BreachModel, optional
        The breach prediction (None where predicted incursions are off).

    Returns
    -------
    ZoneView
    """
    reach = snap.speed * (horizon or 0.0)
    if breach is not None:
        reach = np.maximum(reach, breach.reach(snap.speed))
    margin = np.maximum(np.maximum(FAR_SIGMAS * snap.sigma, reach), band)
    box = box_distance(snap.x[:, :2], zone.bounds)
    near = box <= margin + 1.0
    active = near.copy()
    rows, found = snap.rows_of(np.concatenate([state.live_ids(), *open_ids]))
    active[rows[found]] = True
    rows = active.nonzero()[0]
    m = rows.size
    p_in, ttb, p_breach = np.zeros(m), np.full(m, np.inf), np.zeros(m)
    dist, side = np.full(m, np.inf), np.zeros(m, np.int8)
    sub = near[rows].nonzero()[0]
    if sub.size:
        r = rows[sub]
        x = snap.table[r, :4]
        got = zone.measure(x[:, :2], snap.P_pos[r], x[:, 2:], horizon or 0.0, box[r])
        p_in[sub], dist[sub], side[sub] = got.p_inside, got.distance, got.side
        if horizon is not None:
            ttb[sub] = got.time_to_breach
        if breach is not None:
            p_breach[sub] = _breach(breach, snap, r, x, got.distance, got.normal)
    ids = snap.ids[rows]
    col = dict(zip(STATE_COLUMNS, state.gather(ids).T, strict=True))
    # Where the track came from: the last side it was seen on while outside.
    col["side_from"] = np.where((dist > 0) & (side != 0), side, col["side_from"])
    return ZoneView(rows, ids, snap.table[rows], p_in, ttb, p_breach, dist, side, col)


def _breach(
    model: BreachModel, snap: Snapshot, r: np.ndarray, x: np.ndarray, gap: np.ndarray,
    normal: np.ndarray,
) -> np.ndarray:
    """P(breach) of snapshot rows ``r`` (K,) with states ``x`` (K, 4) and their zone
    distances and normals; 1 inside, 0 beyond the model's reach (no sums spent there)."""
    p = np.where(gap > 0, 0.0, 1.0)
    k = ((gap > 0) & (gap <= model.reach(snap.speed[r]))).nonzero()[0]
    if k.size:
        rk = r[k]
        P = np.empty((k.size, 4, 4))
        P[:, :2, :2] = snap.P_pos[rk]
        P[:, 2:, :] = snap.P_vel[rk]  # type: ignore[index]
        P[:, :2, 2:] = P[:, 2:, :2].transpose(0, 2, 1)
        mu = None if snap.mu is None else snap.mu[:, rk]
        p[k] = model.probability(gap[k], normal[k], x[k], P, mu)
    return p
