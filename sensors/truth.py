"""Ground truth: where every target is, when, and each incursion into a zone.

Each target follows a *plan*: waypoints with times, moving in straight legs at
constant velocity between them (a pause is two waypoints at the same place). A target
is born at its first waypoint and dies at its last. Plans are drawn once per target
(a Python loop over targets, not over time); evaluating every target at a time ``t``
is then one vectorised pass over padded ``(N, W)`` arrays, which is what the sensor
models call at their own measurement times.

Behaviours (relative to a zone, in its along/across coordinates, see
:class:`sensors.shapes.ZoneFrame`):

``patrol``  legs parallel to the zone at a distance from its edge, turning back at the ends
``wander``  random straight legs with turns and pauses, staying on one side
``probe``   walk up to ``stop`` metres from the edge, wait, turn back (not an incursion)
``cross``   approach, cross the zone, leave on the other side
``loiter``  approach, enter, wander slowly inside for a while, leave

Incursions are found on the sampled truth and their entry and exit times refined by
bisection on the exact piecewise-linear motion. The ``side`` of an incursion is the
zone's named side (``properties.sides``) that the target was on just before it
entered: the side of the nearest boundary point, so it stays right where a zone bends;
``"inside"`` if the target was born inside.

Randomness: each target draws from its own generator seeded by (scenario seed, group
name, index in group), so adding a group or a sensor leaves every other target alone.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from scipy.spatial import cKDTree

from fusion.messages import CLASSES, WireError, pack_map, unpack_map
from sensors.scenario import CLASS_INDEX, Scenario, TargetGroup
from sensors.shapes import ZoneFrame

# Targets (other than convoy members) closer than this are re-planned, a few rounds.
MIN_SEPARATION_M = 100.0
_SEPARATION_ROUNDS = 6
_SEPARATION_DT = 5.0
_BISECTIONS = 40
_F8 = np.dtype("<f8")
_I8 = np.dtype("<i8")
_U1 = np.dtype("u1")


def child_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator for one named stream of a scenario (stable across Python runs)."""
    words = [seed]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k))
    return np.random.default_rng(np.random.SeedSequence(words))


# ---------------------------------------------------------------------------- trajectories


@dataclass(frozen=True, eq=False)
class Trajectories:
    """Every target's plan, padded to the longest one.

    Attributes
    ----------
    ids : ndarray, shape (N,), int64
    cls : ndarray, shape (N,), uint8
        Class index into :data:`fusion.messages.CLASSES`.
    T : ndarray, shape (N, W), float64
        Waypoint times, increasing along a row, padded with +inf.
    P : ndarray, shape (N, W, 2), float64
        Waypoint positions, east/north metres, padded with the last one.
    V : ndarray, shape (N, W, 2), float64
        Velocity on the leg that starts at each waypoint (zero after the last).
    t_birth, t_death : ndarray, shape (N,), float64
    convoy : ndarray, shape (N,), int64
        Convoy number shared by a convoy's vehicles, -1 for lone targets.
    """

    ids: np.ndarray
    cls: np.ndarray
    T: np.ndarray
    P: np.ndarray
    V: np.ndarray
    t_birth: np.ndarray
    t_death: np.ndarray
    convoy: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def evaluate(self, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States of targets ``rows`` at times ``t`` (one time per row).

        Parameters
        ----------
        rows : ndarray, shape (R,), int
        t : ndarray, shape (R,), float64

        Returns
        -------
        x : ndarray, shape (R, 4), float64
            east, north, v_east, v_north.
        alive : ndarray, shape (R,), bool
        """
        T = self.T[rows]
        # k = index of the leg in progress: the last waypoint at or before t.
        k = (T <= t[:, None]).sum(axis=1) - 1
        alive = (k >= 0) & (t < self.t_death[rows])
        k = np.clip(k, 0, T.shape[1] - 1)
        p = self.P[rows, k]
        v = self.V[rows, k]
        dt = np.where(alive, t - T[np.arange(len(rows)), k], 0.0)
        x = np.empty((len(rows), 4))
        x[:, :2] = p + v * dt[:, None]  # x = p_k + v_k (t - t_k)
        x[:, 2:] = v
        return x, alive

    def state_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every target alive at time ``t``.

        Returns
        -------
        ids : ndarray, shape (N_t,), int64
        x : ndarray, shape (N_t, 4), float64
        cls : ndarray, shape (N_t,), uint8
        """
        live = np.flatnonzero((self.t_birth <= t) & (t < self.t_death))
        x, _ = self.evaluate(live, np.full(live.shape, float(t)))
        return self.ids[live], x, self.cls[live]


class StateCache:
    """:meth:`Trajectories.state_at` remembered for the most recent times.

    Sensors that share a clock (every radar scans on the second) ask for the same
    time within moments of each other; evaluating the targets once per time instead
    of once per sensor is most of the feed's cost. The arrays handed out are
    read-only because they are shared.

    Parameters
    ----------
    traj : Trajectories
    size : int
        How many distinct times to remember.
    """

    def __init__(self, traj: Trajectories, size: int = 256):
        self.traj = traj
        self.size = size
        self._memo: OrderedDict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def state_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same as :meth:`Trajectories.state_at`."""
        t = float(t)
        hit = self._memo.get(t)
        if hit is not None:
            self._memo.move_to_end(t)
            return hit
        state = self.traj.state_at(t)
        for a in state:
            a.setflags(write=False)
        self._memo[t] = state
        if len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return state


class _PathBuilder:
    """Waypoints of one plan, appended leg by leg."""

    def __init__(self, t0: float, p0: np.ndarray):
        self.t = [float(t0)]
        self.p = [np.asarray(p0, dtype=float)]

    def go(self, p: np.ndarray, speed: float) -> None:
        p = np.asarray(p, dtype=float)
        dist = float(np.hypot(*(p - self.p[-1])))
        if dist < 1e-6:
            return
        self.t.append(self.t[-1] + dist / speed)
        self.p.append(p)

    def wait(self, dt: float) -> None:
        if dt > 0:
            self.t.append(self.t[-1] + dt)
            self.p.append(self.p[-1].copy())

    @property
    def now(self) -> float:
        return self.t[-1]

    def finish(self, t_end: float) -> tuple[np.ndarray, np.ndarray]:
        """Times (W,) and points (W, 2), cut at ``t_end`` (interpolating the last leg)."""
        t = np.asarray(self.t)
        p = np.asarray(self.p)
        if len(t) < 2:  # a plan must last a little while to exist at all
            t = np.array([t[0], t[0] + 1.0])
            p = np.vstack([p[:1], p[:1]])
        if t[-1] > t_end:
            k = int(np.searchsorted(t, t_end, side="right"))
            if k == 0:
                return t[:0], p[:0]
            frac = (t_end - t[k - 1]) / (t[k] - t[k - 1])
            t = np.append(t[:k], t_end)
            p = np.vstack([p[:k], p[k - 1] + frac * (p[k] - p[k - 1])])
        return t, p


def _plan(group: TargetGroup, zf: ZoneFrame, sides: tuple[str, str], rng: np.random.Generator,
          duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw one target's plan: waypoint times (W,) and positions (W, 2)."""
    u_lo, u_hi = zf.u_range
    length = u_hi - u_lo
    ua, ub = u_lo + group.along[0] * length, u_lo + group.along[1] * length
    if group.side == "both":
        side = int(rng.choice([1, -1]))
    else:
        side = 1 if group.side == sides[0] else -1
    speed = rng.uniform(*group.speed)
    t0 = rng.uniform(*group.birth)
    t_end = duration + 1.0
    if group.lifetime is not None:
        t_end = min(t_end, t0 + rng.uniform(*group.lifetime))
    u = rng.uniform(ua, ub)
    d = rng.uniform(*group.offset)
    path = _PathBuilder(t0, zf.outside(u, side, d))
    pause = (0.0, 0.0) if group.cls == "drone" else (5.0, 40.0)

    def jitter() -> float:
        return speed * rng.uniform(0.85, 1.15)

    b = group.behaviour
    if b in ("patrol", "wander"):
        heading = int(rng.choice([1, -1]))
        while path.now < t_end:
            leg = rng.uniform(*group.leg)
            if b == "patrol":
                # Keep to a lane parallel to the edge: small sideways drift only.
                u_next = u + heading * leg
                if not ua <= u_next <= ub:
                    heading = -heading
                    u_next = float(np.clip(u + heading * leg, ua, ub))
                d_next = float(np.clip(d + rng.uniform(-1, 1) * min(100.0, 0.2 * d), *group.offset))
            else:
                u_next = float(np.clip(u + rng.uniform(-1, 1) * leg, ua, ub))
                d_next = float(np.clip(d + rng.uniform(-0.5, 0.5) * leg, *group.offset))
            u, d = u_next, d_next
            path.go(zf.outside(u, side, d), jitter())
            if rng.random() < 0.2:
                path.wait(rng.uniform(*pause))
    elif b == "probe":
        stop = rng.uniform(*group.stop)
        d = max(d, stop + 300.0)
        path = _PathBuilder(t0, zf.outside(u, side, d))
        u_turn = u + rng.uniform(-0.3, 0.3) * (d - stop)
        path.go(zf.outside(u_turn, side, stop), jitter())
        path.wait(rng.uniform(10.0, 60.0))
        path.go(zf.outside(u_turn + rng.uniform(-0.3, 0.3) * d, side, rng.uniform(*group.offset)),
                jitter())
    elif b == "cross":
        lo, hi = zf.edges(u)
        drift = rng.uniform(-0.3, 0.3) * float(hi - lo)
        path.go(zf.inside(u + drift / 2, rng.uniform(0.35, 0.65)), jitter())
        path.go(zf.outside(u + drift, -side, rng.uniform(*group.offset)), jitter())
    elif b == "loiter":
        u_in = u + rng.uniform(-300.0, 300.0)
        path.go(zf.inside(u_in, rng.uniform(0.3, 0.7)), jitter())
        t_leave = path.now + rng.uniform(*group.loiter)
        while path.now < t_leave:
            u_next = float(np.clip(u_in + rng.uniform(-400.0, 400.0), u_lo + 200, u_hi - 200))
            path.go(zf.inside(u_next, rng.uniform(0.25, 0.75)), 0.5 * jitter())
            if rng.random() < 0.4:
                path.wait(rng.uniform(*pause))
        exit_side = side if rng.random() < 0.5 else -side
        path.go(zf.outside(u_in + rng.uniform(-300, 300), exit_side, rng.uniform(*group.offset)),
                jitter())
    return path.finish(t_end)


def _follower(
    times: np.ndarray, points: np.ndarray, behind: float
) -> tuple[np.ndarray, np.ndarray]:
    """The plan of a vehicle ``behind`` metres back along the leader's plan.

    It keeps that distance along the path at all times: it moves when the leader moves
    and halts when the leader halts, queued behind it, as a convoy does. (Following the
    leader's plan a fixed time later instead put every vehicle on the leader's stopping
    point during a pause: four vehicles in one place for a quarter of a minute, which
    no sensor could tell apart.) Before the leader has gone ``behind`` metres the
    vehicle is on the line of the first leg, extended backwards: the convoy starts
    lined up.

    Parameters
    ----------
    times : ndarray, shape (W,)
        The leader's waypoint times (increasing).
    points : ndarray, shape (W, 2)
    behind : float
        Metres along the path.

    Returns
    -------
    times, points : ndarray, shapes (W', ), (W', 2)
        Waypoints at the leader's times and where the vehicle passes a corner.
    """
    if len(times) < 2 or behind == 0:
        return times, points
    legs = np.hypot(*np.diff(points, axis=0).T)
    s_way = np.concatenate([[0.0], np.cumsum(legs)])  # leader's distance at each waypoint
    moving = np.flatnonzero(legs > 0)
    if moving.size == 0:  # a leader that never moves: the convoy stands in line
        return times, points - [behind, 0.0]
    first = points[moving[0] + 1] - points[moving[0]]
    first = first / np.hypot(*first)
    # Corners: the vehicle passes the leader's waypoint v when the leader is ``behind``
    # metres further on, on a moving leg k (s_way[k] < target <= s_way[k + 1]).
    target = s_way[moving + 1] + behind
    k = np.searchsorted(s_way, target, side="left") - 1
    inside = (k >= 0) & (k < len(times) - 1) & (target <= s_way[-1])
    k, target = k[inside], target[inside]
    frac = (target - s_way[k]) / np.where(legs[k] > 0, legs[k], 1.0)
    corner_times = times[k] + frac * (times[k + 1] - times[k])
    t_out = np.unique(np.concatenate([times, corner_times]))
    # A corner passed at a waypoint time, give or take round-off, is that waypoint.
    t_out = t_out[np.concatenate([[True], np.diff(t_out) > 1e-6])]
    s_out = np.interp(t_out, times, s_way) - behind
    # Position at distance s_out along the path (backwards along the first leg if < 0);
    # only moving legs, so a wait's repeated point does not stall the interpolation.
    vertices = np.concatenate([[0.0], s_way[moving + 1]])
    path = np.vstack([points[moving[0]], points[moving + 1]])
    p_out = np.column_stack([np.interp(s_out, vertices, path[:, i]) for i in (0, 1)])
    before = s_out < 0
    p_out[before] = points[moving[0]] + s_out[before, None] * first
    return t_out, p_out


def build_trajectories(scenario: Scenario) -> Trajectories:
    """Draw every target's plan from the scenario and pack them into padded arrays.

    Targets other than convoy members and scripted ``cross``/``loiter`` targets are
    re-planned (a few rounds) when they come within :data:`MIN_SEPARATION_M` of
    another target, so that targets are rarely that close.
    """
    frames = {z.name: (ZoneFrame(shapely.Polygon(z.local)), z.sides) for z in scenario.zone_specs}
    plans: list[tuple[np.ndarray, np.ndarray]] = []
    cls: list[int] = []
    convoy: list[int] = []
    movable: list[tuple[TargetGroup, np.random.Generator] | None] = []
    n_convoys = 0
    for group in scenario.targets:
        for j in range(group.count):
            rng = child_rng(scenario.seed, "target", group.name, j)
            times, points = _plan(group, *frames[group.zone], rng, scenario.duration)
            if group.convoy > 1:
                for k in range(group.convoy):
                    plans.append(_follower(times, points, k * group.spacing))
                    cls.append(CLASS_INDEX[group.cls])
                    convoy.append(n_convoys)
                    movable.append(None)
                n_convoys += 1
            else:
                plans.append((times, points))
                cls.append(CLASS_INDEX[group.cls])
                convoy.append(-1)
                fixed = group.behaviour in ("cross", "loiter")
                movable.append(None if fixed else (group, rng))
    for _ in range(_SEPARATION_ROUNDS):
        traj = _pack(plans, cls, convoy)
        crowded = _crowded(traj, scenario.duration, movable)
        if not crowded:
            break
        for i in crowded:
            group, rng = movable[i]  # type: ignore[misc]
            plans[i] = _plan(group, *frames[group.zone], rng, scenario.duration)
    return _pack(plans, cls, convoy)


def _crowded(traj: Trajectories, duration: float,
             movable: list[tuple[TargetGroup, np.random.Generator] | None]) -> list[int]:
    """Movable targets that come too close to another target (one of each pair)."""
    bad: set[int] = set()
    can_move = np.array([m is not None for m in movable])
    for t in np.arange(0.0, duration, _SEPARATION_DT):
        live = np.flatnonzero((traj.t_birth <= t) & (t < traj.t_death))
        if len(live) < 2:
            continue
        x, _ = traj.evaluate(live, np.full(live.shape, t))
        pairs = cKDTree(x[:, :2]).query_pairs(MIN_SEPARATION_M, output_type="ndarray")
        if len(pairs) == 0:
            continue
        a, b = live[pairs[:, 0]], live[pairs[:, 1]]
        same_convoy = (traj.convoy[a] == traj.convoy[b]) & (traj.convoy[a] >= 0)
        for i, j in zip(a[~same_convoy], b[~same_convoy], strict=True):
            # Move the later (higher index) one if it can move, else the other.
            for k in (max(i, j), min(i, j)):
                if can_move[k]:
                    bad.add(int(k))
                    break
    return sorted(bad)


def _pack(plans: list[tuple[np.ndarray, np.ndarray]], cls: list[int],
          convoy: list[int]) -> Trajectories:
    n = len(plans)
    width = max((len(t) for t, _ in plans), default=2)
    T = np.full((n, width), np.inf)
    P = np.zeros((n, width, 2))
    V = np.zeros((n, width, 2))
    birth = np.full(n, np.inf)
    death = np.full(n, -np.inf)
    for i, (t, p) in enumerate(plans):
        w = len(t)
        if w == 0:
            continue
        T[i, :w] = t
        P[i, :w] = p
        P[i, w:] = p[-1]
        dt = np.diff(t)
        # v = (p_{k+1} - p_k) / (t_{k+1} - t_k); legs of zero duration do not occur.
        V[i, : w - 1] = np.diff(p, axis=0) / np.where(dt > 0, dt, 1.0)[:, None]
        birth[i], death[i] = t[0], t[-1]
    return Trajectories(
        ids=np.arange(1, n + 1, dtype=np.int64),
        cls=np.asarray(cls, dtype=np.uint8),
        T=T, P=P, V=V, t_birth=birth, t_death=death,
        convoy=np.asarray(convoy, dtype=np.int64),
    )


# ---------------------------------------------------------------------------- truth


@dataclass(frozen=True, eq=False)
class Truth:
    """Ground truth sampled every ``truth_dt``, stored flat with per-step offsets.

    Attributes
    ----------
    name : str
        Scenario name (the truth topic is ``truth.<name>``).
    times : ndarray, shape (T,), float64
    offsets : ndarray, shape (T + 1,), int64
        Step ``k`` is rows ``offsets[k]:offsets[k + 1]`` of the arrays below.
    ids : ndarray, shape (S,), int64
    x : ndarray, shape (S, 4), float64
        east, north, v_east, v_north.
    cls : ndarray, shape (S,), uint8
    incursions : list of dict
        ``{"target", "zone", "t_enter", "t_exit" (None if still inside at the end),
        "side", "cls"}``, ordered by entry time.
    trajectories : Trajectories or None
        The exact motion (absent when loaded from a file).
    """

    name: str
    times: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    x: np.ndarray
    cls: np.ndarray
    incursions: list[dict[str, Any]]
    trajectories: Trajectories | None = None

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def step(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids (N_t,), x (N_t, 4), cls (N_t,))`` of step ``k``."""
        a, b = self.offsets[k], self.offsets[k + 1]
        return self.ids[a:b], self.x[a:b], self.cls[a:b]

    @property
    def topic(self) -> bytes:
        return f"truth.{self.name}".encode("ascii")

    def save(self, path: str | Path) -> None:
        """Write an ``.npz``: times, offsets, ids, x, cls, and the incursions as JSON."""
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh, times=self.times, offsets=self.offsets, ids=self.ids, x=self.x,
                cls=self.cls, name=np.array(self.name),
                incursions=np.array(json.dumps(self.incursions)),
            )

    @classmethod
    def load(cls, path: str | Path) -> Truth:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            return cls(
                name=str(f["name"]), times=f["times"], offsets=f["offsets"], ids=f["ids"],
                x=f["x"], cls=f["cls"], incursions=json.loads(str(f["incursions"])),
            )


def simulate_truth(scenario: Scenario) -> Truth:
    """Plan every target, sample the truth every ``truth_dt`` and find the incursions."""
    traj = build_trajectories(scenario)
    times = np.arange(0.0, scenario.duration + scenario.truth_dt / 2, scenario.truth_dt)
    ids, xs, cls, counts = [], [], [], [0]
    polys = [shapely.Polygon(z.local) for z in scenario.zone_specs]
    for p in polys:
        shapely.prepare(p)
    inside = np.zeros((len(polys), len(times), len(traj)), dtype=bool)
    for k, t in enumerate(times):
        live = np.flatnonzero((traj.t_birth <= t) & (t < traj.t_death))
        x, _ = traj.evaluate(live, np.full(live.shape, t))
        ids.append(traj.ids[live])
        xs.append(x)
        cls.append(traj.cls[live])
        counts.append(len(live))
        for z, poly in enumerate(polys):
            inside[z, k, live] = shapely.contains_xy(poly, x[:, 0], x[:, 1])
    incursions: list[dict[str, Any]] = []
    for z, spec in enumerate(scenario.zone_specs):
        zf = ZoneFrame(polys[z])
        incursions.extend(_incursions(traj, times, inside[z], polys[z], zf, spec.name, spec.sides))
    incursions.sort(key=lambda e: (e["t_enter"], e["target"], e["zone"]))
    return Truth(
        name=scenario.name,
        times=times,
        offsets=np.cumsum(counts).astype(np.int64),
        ids=np.concatenate(ids) if ids else np.empty(0, np.int64),
        x=np.concatenate(xs) if xs else np.empty((0, 4)),
        cls=np.concatenate(cls) if cls else np.empty(0, np.uint8),
        incursions=incursions,
        trajectories=traj,
    )


def _refine(traj: Trajectories, poly: shapely.Polygon, rows: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, inside_at_hi: bool) -> np.ndarray:
    """Bisect each bracket ``[lo, hi]`` for the time the target crosses the boundary."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        x, alive = traj.evaluate(rows, mid)
        inn = alive & shapely.contains_xy(poly, x[:, 0], x[:, 1])
        at_hi_state = inn if inside_at_hi else ~inn
        hi = np.where(at_hi_state, mid, hi)
        lo = np.where(at_hi_state, lo, mid)
    return hi if inside_at_hi else lo


def _incursions(traj: Trajectories, times: np.ndarray, inside: np.ndarray,
                poly: shapely.Polygon, zf: ZoneFrame, zone: str,
                sides: tuple[str, str]) -> list[dict[str, Any]]:
    """Episodes of each target inside one zone, from the sampled ``inside`` (T, N)."""
    padded = np.vstack([np.zeros((1, inside.shape[1]), bool), inside,
                        np.zeros((1, inside.shape[1]), bool)]).astype(np.int8)
    change = np.diff(padded, axis=0)  # +1 at the first step inside, -1 at the first after
    k_in, n_in = np.nonzero(change == 1)
    k_out, n_out = np.nonzero(change == -1)
    o_in = np.lexsort((k_in, n_in))
    o_out = np.lexsort((k_out, n_out))
    k_in, n_in, k_out, n_out = k_in[o_in], n_in[o_in], k_out[o_out], n_out[o_out]
    if len(k_in) == 0:
        return []
    # Entry: between the previous sample (or birth) and the first sample inside.
    lo = np.maximum(np.where(k_in > 0, times[np.maximum(k_in - 1, 0)], -np.inf),
                    traj.t_birth[n_in])
    hi = times[k_in]
    x_lo, _ = traj.evaluate(n_in, lo)
    born_inside = shapely.contains_xy(poly, x_lo[:, 0], x_lo[:, 1])
    t_enter = np.where(born_inside, lo, _refine(traj, poly, n_in, lo, hi, True))
    side_sign = zf.side_of(x_lo[:, :2])
    # Exit: between the last sample inside and the next one (or death).
    last = k_out - 1
    ends = k_out >= len(times)
    lo_o = times[np.minimum(last, len(times) - 1)]
    hi_o = np.minimum(times[np.minimum(k_out, len(times) - 1)], traj.t_death[n_out])
    x_hi, alive_hi = traj.evaluate(n_out, np.nextafter(hi_o, -np.inf))
    still_in = alive_hi & shapely.contains_xy(poly, x_hi[:, 0], x_hi[:, 1])
    t_exit = np.where(still_in, hi_o, _refine(traj, poly, n_out, lo_o, hi_o, False))
    out = []
    for j in range(len(n_in)):
        n = int(n_in[j])
        out.append({
            "target": int(traj.ids[n]),
            "zone": zone,
            "t_enter": float(t_enter[j]),
            "t_exit": None if ends[j] else float(t_exit[j]),
            "side": "inside" if born_inside[j] else sides[0 if side_sign[j] > 0 else 1],
            "cls": CLASSES[int(traj.cls[n])],
        })
    return out


# ---------------------------------------------------------------------------- wire


def encode_truth(t: float, ids: np.ndarray, x: np.ndarray, cls: np.ndarray) -> bytes:
    """Truth at one time as a versioned msgpack map (topic ``truth.<scenario name>``).

    Parameters
    ----------
    t : float
    ids : ndarray, shape (N,), int64
    x : ndarray, shape (N, 4), float64
    cls : ndarray, shape (N,), uint8
    """
    return pack_map({
        "type": "truth",
        "t": float(t),
        "ids": np.ascontiguousarray(ids, dtype=_I8).tobytes(),
        "x": np.ascontiguousarray(x, dtype=_F8).tobytes(),
        "cls": np.ascontiguousarray(cls, dtype=_U1).tobytes(),
    })


def decode_truth(payload: bytes) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_truth`: ``(t, ids (N,), x (N, 4), cls (N,))``.

    Raises
    ------
    WireError
        When the payload is not a well-formed truth message.
    """
    obj = unpack_map(payload)
    if obj.get("type") != "truth":
        raise WireError("schema", f"message type {obj.get('type')!r} is not 'truth'")
    t = obj.get("t")
    if not isinstance(t, float | int) or isinstance(t, bool) or not np.isfinite(t):
        raise WireError("schema", "truth time 't' is missing or not a finite number")
    ids_b, x_b, cls_b = obj.get("ids"), obj.get("x"), obj.get("cls")
    if not (isinstance(ids_b, bytes) and isinstance(x_b, bytes) and isinstance(cls_b, bytes)):
        raise WireError("schema", "truth arrays 'ids', 'x', 'cls' must be binary")
    n = len(ids_b) // 8
    if len(ids_b) != 8 * n or len(x_b) != 32 * n or len(cls_b) != n:
        raise WireError("shape", "truth arrays do not describe the same number of targets")
    return (
        float(t),
        np.frombuffer(ids_b, dtype=_I8),
        np.frombuffer(x_b, dtype=_F8).reshape(n, 4),
        np.frombuffer(cls_b, dtype=_U1),
    )
