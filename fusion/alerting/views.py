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
    "pred_near",
    "loit_e",
    "loit_n",
    "loit_t",
    "loit_off",
)
# Value of each state column for a track without a row: no side seen, no timer.
_STATE_DEFAULT = np.array([0.0] + [np.nan] * (len(STATE_COLUMNS) - 1))
# Entries of a row-major 4 x 4 covariance that make the breach probability's blocks:
# the position block, the velocity block, and P_vp' (P[2 + j, i] at [i, j]).
_BLOCK_ENTRIES = np.array([0, 1, 4, 5, 10, 11, 14, 15, 8, 12, 9, 13])
# Timers whose running means the track must be evaluated even far from the zone.
_LIVE = [STATE_COLUMNS.index(c) for c in ("inc_on", "pred_on", "loit_t")]


@dataclass
class ZoneState:
    """Per-track columns one zone carries between steps.

    Attributes
    ----------
    ids : ndarray, shape (K,), int64
        Track ids, ascending.
    table : ndarray, shape (len(STATE_COLUMNS), K)
        One row per column: ``side_from`` (1, -1, 0 = none seen) and the timers (NaN =
        not running). Column-major, so that a view's columns are contiguous rows.
    """

    ids: np.ndarray
    table: np.ndarray

    @classmethod
    def empty(cls) -> ZoneState:
        return cls(np.zeros(0, np.int64), np.zeros((len(STATE_COLUMNS), 0)))

    def as_columns(self) -> dict[str, np.ndarray]:
        """Checkpoint form: ``ids`` and one array per column."""
        return {"ids": self.ids, **dict(zip(STATE_COLUMNS, self.table, strict=True))}

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> ZoneState:
        # A column an older checkpoint lacks starts at its default for every track.
        ids = np.asarray(columns["ids"], np.int64)
        table = np.array([
            np.asarray(columns[c], float).ravel() if c in columns
            else np.full(ids.size, default)
            for c, default in zip(STATE_COLUMNS, _STATE_DEFAULT, strict=True)
        ])
        return cls(ids, table.reshape(len(STATE_COLUMNS), -1))

    def live_ids(self) -> np.ndarray:
        """Tracks with a timer running (they are evaluated wherever they are)."""
        return self.ids[~np.isnan(self.table[_LIVE]).all(axis=0)]

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Columns for ``ids`` (defaults where there is none), shape (len(STATE_COLUMNS), M)."""
        if self.ids.size == 0:
            return np.repeat(_STATE_DEFAULT[:, None], ids.size, axis=1)
        k = np.minimum(self.ids.searchsorted(ids), self.ids.size - 1)
        return np.where(self.ids[k] == ids, self.table[:, k], _STATE_DEFAULT[:, None])

    def after(self, v: ZoneView, snap: Snapshot) -> ZoneState:
        """The state for the next step: the evaluated rows that carry anything, and the
        others unchanged while their track is still confirmed."""
        rows, present = snap.rows_of(self.ids)
        evaluated = np.zeros(len(snap), bool)
        evaluated[v.rows] = True
        # rows is some valid row where a track is not present (none in an empty snapshot)
        carried = present & ~evaluated[rows] if len(snap) else present
        table = np.array([v.col[c] for c in STATE_COLUMNS])
        keep = (table[0] != 0) | ~np.isnan(table[1:]).all(axis=0)
        ids = np.concatenate([self.ids[carried], v.ids[keep]])
        order = np.argsort(ids, kind="stable")
        merged = np.concatenate([self.table[:, carried], table[:, keep]], axis=1)
        return ZoneState(ids[order], merged[:, order])


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
    ids_ascending : bool
        ``ids`` is ascending (a snapshot in the tracker's order): no sort to search it.
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
    ids_ascending: bool = False

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
        """:meth:`values` of several view positions ``at`` (K,), as K lists."""
        # Column gathers and Python lists: fewer numpy calls than filling a (K, 11) array.
        nan, inf = np.nan, np.inf
        return [
            [east, north, ve, vn, speed, p_in, nan if ttb == inf else ttb, p_b, side, cls, conf]
            for (east, north, ve, vn, speed, cls, conf), p_in, ttb, p_b, side in zip(
                self.table[at].tolist(),
                self.p_inside[at].tolist(),
                self.ttb[at].tolist(),
                self.p_breach[at].tolist(),
                self.side[at].tolist(),
                strict=True,
            )
        ]

    def by_id(self) -> np.ndarray:
        """View positions in ascending track id, shape (M,)."""
        if self._by_id is None:
            self._by_id = np.argsort(self.ids, kind="stable")
        return self._by_id

    def positions_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """View positions of ``ids``: (position (K,), found (K,) bool)."""
        if self.ids.size == 0:
            return np.zeros(ids.shape, np.intp), np.zeros(ids.shape, bool)
        if self.ids_ascending:
            k = np.minimum(self.ids.searchsorted(ids), self.ids.size - 1)
            return k, self.ids[k] == ids
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
        np.maximum(reach, breach.reach(snap.speed), out=reach)
    margin = np.maximum(FAR_SIGMAS * snap.sigma, reach, out=reach)
    np.maximum(margin, band, out=margin)
    box = box_distance(snap.x[:, :2], zone.bounds)
    margin += 1.0
    near = box <= margin
    rows = near.nonzero()[0]
    ids = snap.ids[rows]
    # Tracks with a timer running or an alert open are evaluated wherever they are;
    # they are nearly always near already (then the near tracks are the view).
    extra_ids = np.concatenate([state.live_ids(), *open_ids])
    sub = None  # view positions of the near tracks; None: all of them
    if extra_ids.size and not (snap.ids_ascending and _all_in(extra_ids, ids)):
        extra, found = snap.rows_of(extra_ids)
        active = near.copy()
        active[extra[found]] = True
        rows = active.nonzero()[0]
        ids = snap.ids[rows]
        sub = near[rows].nonzero()[0]
    table = snap.table[rows]
    m = rows.size
    if sub is None and m:
        got = _measure(zone, snap, rows, table, horizon, box, breach)
        p_in, ttb, p_breach, dist, side = got
    else:
        p_in, ttb, p_breach = np.zeros(m), np.full(m, np.inf), np.zeros(m)
        dist, side = np.full(m, np.inf), np.zeros(m, np.int8)
        if sub is not None and sub.size:
            got = _measure(zone, snap, rows[sub], table[sub], horizon, box, breach)
            p_in[sub], ttb[sub], p_breach[sub], dist[sub], side[sub] = got
    col = dict(zip(STATE_COLUMNS, state.gather(ids), strict=True))
    # Where the track came from: the last side it was seen on while outside.
    col["side_from"] = np.where((dist > 0) & (side != 0), side, col["side_from"])
    return ZoneView(rows, ids, table, p_in, ttb, p_breach, dist, side, col, snap.ids_ascending)


def _all_in(ids: np.ndarray, sorted_ids: np.ndarray) -> bool:
    """Whether every one of ``ids`` is in ``sorted_ids`` (ascending)."""
    if sorted_ids.size == 0:
        return False
    k = np.minimum(sorted_ids.searchsorted(ids), sorted_ids.size - 1)
    return bool((sorted_ids[k] == ids).all())


def _measure(
    zone: Zone,
    snap: Snapshot,
    r: np.ndarray,
    table: np.ndarray,
    horizon: float | None,
    box: np.ndarray,
    breach: BreachModel | None,
) -> tuple[np.ndarray, ...]:
    """P(inside), time to breach, P(breach), distance and side of snapshot rows ``r``
    (K,) near the zone, whose snapshot table rows are ``table`` (K, len(COLUMNS))."""
    pos, vel, speed = table[:, :2], table[:, 2:4], table[:, 4]
    got = zone.measure(pos, snap.P_pos[r], vel, horizon or 0.0, box[r], speed, snap.sigma[r])
    ttb = got.time_to_breach if horizon is not None else np.full(r.size, np.inf)
    if breach is None:
        p_breach = np.zeros(r.size)
    else:
        p_breach = _breach(breach, snap, r, table, got.distance, got.normal)
    return got.p_inside, ttb, p_breach, got.distance, got.side


def _breach(
    model: BreachModel,
    snap: Snapshot,
    r: np.ndarray,
    table: np.ndarray,
    gap: np.ndarray,
    normal: np.ndarray,
) -> np.ndarray:
    """P(breach) of snapshot rows ``r`` (K,) with table rows ``table`` (K, len(COLUMNS))
    and their zone distances and normals; 1 inside, 0 beyond the model's reach (no
    sums spent there)."""
    outside = gap > 0
    p = np.where(outside, 0.0, 1.0)
    k = (outside & (gap <= model.reach(table[:, 4]))).nonzero()[0]
    if k.size:
        rk = r[k]
        # Position, velocity, and the cross term P_pv + P_vp' = 2 P_vp' (the tracker's
        # P is symmetric; only its velocity rows are read): one gather, one doubling.
        blocks = snap.P_rows[rk[:, None], _BLOCK_ENTRIES].reshape(k.size, 3, 2, 2)  # type: ignore[index]
        cross = blocks[:, 2]
        np.add(cross, cross, out=cross)
        mu = None if snap.mu is None else snap.mu[:, rk]
        p[k] = model.probability(gap[k], normal[k], table[k, :4], blocks, mu)
    return p
