r"""Track continuity: a new track that continues an older one's target takes its id.

A target missed a few times in a row, or one that left every sensor's coverage for
longer than its prediction was useful, loses its track; to an operator a new track on
it is the same target under a new id. Lost tracks come back through
``fusion.tracking.lost`` (revived by a detection, or claimed by a newly confirmed
track: :func:`continue_ids`). Two confirmed tracks on one target are merged
(:func:`duplicates`).

A target that turns sharply is often picked up by a new track before its old track,
still coasting on the old course, is deleted; :func:`supersede` matches the two while
the new one is young, so the id (and the alerts keyed by it) carries on.
"""

from __future__ import annotations

import functools

import numpy as np

from fusion.tracking import kalman
from fusion.tracking.association import assign
from fusion.tracking.config import TrackerConfig
from fusion.tracking.gating import gate, gate_threshold, gate_within
from fusion.tracking.lost import LostTracks, Revived
from fusion.tracking.track_table import CONFIRMED, TrackTable

__all__ = ["LostTracks", "Revived", "continue_ids", "duplicates", "supersede", "superseded_rows"]


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
    a, b = gate_within(position, P[:, :2, :2], gamma)  # each unordered pair once
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


# Seconds of unknown motion the restarted old track is allowed at least (see
# :func:`supersede`). With several sensors reporting in the same second, the old track
# may take one more detection, a coarse one it can still gate, in the very second
# the new track starts and confirms on a precise one 40-60 m away: restarted at that
# last update with no time to move, it would keep only its own few metres of
# uncertainty and fail the gate, so the new track would be published for a second
# under its own id before taking the old one (two id switches). Its position after a
# manoeuvre is off by about a scan's worth of the new course, hence one second.
RESTART_MIN_SPAN = 1.0


@functools.lru_cache(maxsize=8)
def _gate_2dof(probability: float) -> float:
    return gate_threshold(probability, dof=2)


def supersede(
    new: tuple[np.ndarray, np.ndarray, np.ndarray],
    old: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    now: float, max_gap: float, velocity_std: float, accel_var: float,
    probability: float = 0.999,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Newly confirmed tracks that continue a confirmed track which lost its target.

    A target that turns sharply (a reversal, a right angle at speed) leaves its track
    coasting on the old course: it misses for a few seconds and is deleted, while the
    detections, outside its gate, start a new track that confirms first. The old track
    is then not yet lost, so :class:`LostTracks` cannot hand its id over. Here the old
    track is restarted where it was last detected, at time ``tau``, as a new track
    would be (its velocity unknown: zero mean, ``velocity_std`` per component, since
    after a manoeuvre its course says nothing), predicted to ``now`` (over at least
    ``RESTART_MIN_SPAN``: its last update, filtered on the old course, lags the turn)
    and tested against each new track on position (2-dof chi-square; a track
    confirmed on two or three detections knows its velocity too poorly for a 4-dof
    test to help):

    .. math:: d^2 = (p_n - \hat p_o)' (P_n + \hat P_o)^{-1} (p_n - \hat p_o) \le \gamma_2.

    Only old tracks last detected no later than the new one's birth, and by at most
    ``max_gap`` seconds, are candidates: a new track starts only on detections outside
    every confirmed track's gate, so one that starts and confirms next to a track
    which then stops being detected is that track's target after a manoeuvre. Pairs
    inside the gate are settled one to one by global assignment on ``d^2 + ln |S|``.

    Parameters
    ----------
    new : tuple of ndarray
        ``x`` (K, 4) and ``P`` (K, 4, 4) of the new tracks at ``now``, and their birth
        times ``born`` (K,).
    old : tuple of ndarray
        ``x`` (M, 4), ``P`` (M, 4, 4), state times ``t`` (M,) and last detection
        times ``t_hit`` (M,) of the candidate old tracks (confirmed, not updated by
        this batch).
    now : float
    max_gap : float
        Seconds, see above.
    velocity_std : float
        Prior standard deviation of each velocity component of the restarted old
        track, m/s.
    accel_var : float
        Process noise of the predictions, (m/s^2)^2.
    probability : float
        Gate probability of the chi-square test.

    Returns
    -------
    new_index, old_index : ndarray, shape (A,), intp
        Matched pairs: index into the K new and into the M old tracks.
    """
    x_n, P_n, born = new
    x_o, P_o, t_o, t_hit = old
    empty = np.empty(0, dtype=np.intp)
    if x_n.shape[0] == 0 or x_o.shape[0] == 0 or max_gap <= 0:
        return empty, empty
    # The old tracks where they were last detected (undoing their coast), restarted
    # with an unknown velocity and predicted to now.
    xo, Po = kalman.predict(x_o, P_o, t_hit - t_o, accel_var)
    xo[:, 2:] = 0.0
    Po[:, 2:, :] = Po[:, :, 2:] = 0.0
    Po[:, 2, 2] = Po[:, 3, 3] = velocity_std**2
    xo, Po = kalman.predict(xo, Po, np.maximum(now - t_hit, RESTART_MIN_SPAN), accel_var)
    near = gate(x_n[:, :2], P_n[:, :2, :2], xo[:, :2], Po[:, :2, :2], _gate_2dof(probability))
    ok = (t_hit[near.detection] <= born[near.track]) & (
        born[near.track] - t_hit[near.detection] <= max_gap
    )
    if not ok.any():
        return empty, empty
    cost = (near.d2 + near.log_det_S)[ok]
    return assign(
        x_n.shape[0], x_o.shape[0], near.track[ok], near.detection[ok], cost,
        np.full(x_n.shape[0], cost.max() + 1.0),
    )


def _may_gate(
    x: np.ndarray, P: np.ndarray, tracks: TrackTable, old: np.ndarray, now: float,
    cfg: TrackerConfig, accel_var: float,
) -> np.ndarray:
    r"""Which of the ``old`` rows could pass :func:`supersede`'s gate with a young track.

    The exact test predicts every candidate twice; on a small batch against a large
    table that is most of the batch's cost, and nearly every candidate is kilometres
    away. Since :math:`\lambda_{max}(S) \le \operatorname{tr} S`, a pair with
    :math:`|\Delta p|^2 > \gamma_2 (\operatorname{tr} P_{n} + \operatorname{tr}
    \hat P_{o})` (position blocks, the restarted old track's trace in closed form) is
    outside the gate, so dropping it changes no result.

    Parameters
    ----------
    x : ndarray, shape (K, 4)
    P : ndarray, shape (K, 4, 4)
        The young tracks at ``now``.
    tracks : TrackTable
    old : ndarray, shape (M,), intp
        Candidate rows.
    now : float
    cfg : TrackerConfig
    accel_var : float

    Returns
    -------
    keep : ndarray, shape (M,), bool
    """
    return _near_restart(
        x, P, tracks.take("x", old), tracks.take("P", old), tracks.t[old], tracks.t_hit[old],
        now, cfg, accel_var,
    )


def _near_restart(
    x: np.ndarray, P: np.ndarray, x_o: np.ndarray, P_o: np.ndarray, t: np.ndarray,
    t_hit: np.ndarray, now: float, cfg: TrackerConfig, accel_var: float,
) -> np.ndarray:
    """:func:`_may_gate`'s bound on batch-last columns of the old tracks.

    Parameters
    ----------
    x : ndarray, shape (K, 4)
    P : ndarray, shape (K, 4, 4)
        The young tracks at ``now``.
    x_o : ndarray, shape (4, M)
    P_o : ndarray, shape (4, 4, M)
    t, t_hit : ndarray, shape (M,)
        The old tracks' states, state times and last detection times: gathered rows
        or views of the whole table (each entry a contiguous vector either way).

    Returns
    -------
    keep : ndarray, shape (M,), bool
    """
    back = t_hit - t  # <= 0: undo the coast
    b2 = back * back
    # tr_A + 2 back tr_B + back^2 (tr_C + q back^2 / 2): the coast undone, then the
    # restart's 2 v^2 span^2 + q span^4 / 2. Any rounding is inside the slack below.
    tr_old = P_o[2, 2] + P_o[3, 3]
    tr_old += (accel_var / 2.0) * b2
    tr_old *= b2
    tr_old += P_o[0, 0]
    tr_old += P_o[1, 1]
    tr_B = P_o[0, 2] + P_o[1, 3]
    tr_B *= back + back
    tr_old += tr_B
    s2 = now - t_hit
    np.maximum(s2, RESTART_MIN_SPAN, out=s2)
    s2 *= s2  # span^2
    restart = (accel_var / 2.0) * s2
    restart += 2.0 * cfg.init_velocity_std**2
    restart *= s2
    tr_old += restart
    # 1 % and 1 m^2 of slack: rounding must never drop a pair the exact test keeps.
    slack = 1.01 * _gate_2dof(cfg.supersede_probability)
    tr_old *= slack
    east = x_o[2] * back
    east += x_o[0]
    north = x_o[3] * back
    north += x_o[1]
    if x.shape[0] == 1:  # one young track (the usual case): no (K, M) temporaries
        east -= x[0, 0]
        north -= x[0, 1]
        d2 = east * east
        d2 += north * north
        tr_old += slack * (P[0, 0, 0] + P[0, 1, 1]) + 1.0
        return d2 <= tr_old
    d2 = (x[:, 0, None] - east) ** 2 + (x[:, 1, None] - north) ** 2  # (K, M)
    return (d2 <= tr_old + (slack * (P[:, 0, 0] + P[:, 1, 1]) + 1.0)[:, None]).any(axis=0)


def _within_reach(
    x: np.ndarray, P: np.ndarray, tracks: TrackTable, now: float, cfg: TrackerConfig,
    accel_var: float,
) -> np.ndarray | None:
    r"""A coarser :func:`_near_restart` over the whole table, for one young track.

    The distance is the exact bound's (the old track where it was last detected); the
    reach is one radius for every row, from the largest terms of the table: with
    :math:`|P_{02}| \le \sqrt{P_{00} P_{22}}` (a covariance), :math:`2 |b| |P_{02}|
    \le P_{00} + b^2 P_{22}`, so the coast undone adds at most :math:`2 \operatorname{tr}
    A + 2 b^2 \operatorname{tr} C + q b^4 / 2` with :math:`b` the longest coast, and the
    restart is longest for the oldest hit. A row outside it is outside the exact bound
    (1 % of extra slack for rounding); the bound costs half the exact one's whole-column
    operations, and in a large picture leaves no row or a handful.

    Parameters
    ----------
    x : ndarray, shape (1, 4)
    P : ndarray, shape (1, 4, 4)
        The young track at ``now``.
    tracks : TrackTable
    now : float
    cfg : TrackerConfig
    accel_var : float

    Returns
    -------
    keep : ndarray, shape (n,), bool, or None
        Rows that may pass the exact bound; None when the table holds a non-finite
        term (the radius would say nothing), for the exact bound to decide.
    """
    back = tracks.t_hit - tracks.t
    x_o, P_o = tracks.x, tracks.P
    # The exact bound's distance, to the bit (same expressions, same order).
    east = x_o[2] * back
    east += x_o[0]
    north = x_o[3] * back
    north += x_o[1]
    east -= x[0, 0]
    north -= x[0, 1]
    d2 = east * east
    d2 += north * north
    # Reductions cost twice an elementwise pass: the four variances in one (a strided
    # (n, 4) view of the diagonals), and the ufuncs' own reduce, without ndarray.max's
    # Python layer.
    var = np.maximum.reduce(P_o.diagonal(0, 0, 1), axis=0)
    b2 = max(float(np.minimum.reduce(back)) ** 2, float(np.maximum.reduce(back)) ** 2)
    s2 = max(now - float(np.minimum.reduce(tracks.t_hit)), RESTART_MIN_SPAN) ** 2
    tr_A, tr_C = float(var[0] + var[1]), float(var[2] + var[3])
    worst = (2.0 * (tr_A + b2 * tr_C) + (accel_var / 2.0) * b2 * b2
             + ((accel_var / 2.0) * s2 + 2.0 * cfg.init_velocity_std**2) * s2)
    slack = 1.01 * _gate_2dof(cfg.supersede_probability)
    reach = 1.01 * (slack * (worst + float(P[0, 0, 0] + P[0, 1, 1])) + 1.0)
    if not np.isfinite(reach):
        return None
    return d2 <= reach


def _states_at(
    tracks: TrackTable, rows: np.ndarray, now: float, accel_var: float
) -> tuple[np.ndarray, np.ndarray]:
    """The tracks ``rows`` predicted to ``now``, batch-first.

    Rows this batch predicted or updated are already at ``now`` when the batch is the
    newest: then the prediction, whose every term is zero, is skipped (it would only
    have turned a -0.0 into +0.0), which is most of a small batch's continuity cost.

    Parameters
    ----------
    tracks : TrackTable
    rows : ndarray, shape (K,), intp
    now : float
    accel_var : float
        Process noise of the prediction, (m/s^2)^2.

    Returns
    -------
    x : ndarray, shape (K, 4)
    P : ndarray, shape (K, 4, 4)
    """
    x, P = tracks.take("x", rows), tracks.take("P", rows)  # batch-last copies
    dt = now - tracks.t[rows]
    if dt.any():
        x, P = kalman.predict_batch_last(x, P, dt, accel_var)
    return x.T, P.transpose(2, 0, 1)


def superseded_rows(
    tracks: TrackTable, updated: np.ndarray, now: float, cfg: TrackerConfig, accel_var: float
) -> np.ndarray:
    """Give young confirmed tracks the ids of the coasting tracks they continue.

    The young tracks are the confirmed ones born less than ``cfg.supersede_max_gap``
    ago that this batch updated: a manoeuvring target's old track may take a stray
    detection or two after the new one's birth, so the test (:func:`supersede`) is
    repeated while the new track is young, not only when it confirms. The candidates
    are the confirmed tracks this batch did not update. Each match writes the old id
    (and adds the old class evidence) into the young row.

    Parameters
    ----------
    tracks : TrackTable
    updated : ndarray, shape (U,), intp
        Rows this batch updated.
    now : float
    cfg : TrackerConfig
    accel_var : float
        Process noise of the predictions, (m/s^2)^2.

    Returns
    -------
    old : ndarray, intp
        Rows of the superseded tracks, which now share their id with the young row:
        the caller removes them without reporting a deletion.
    """
    none = np.empty(0, dtype=np.intp)
    if cfg.supersede_max_gap <= 0 or updated.size == 0:
        return none
    young = updated[(tracks.status[updated] == CONFIRMED)
                    & (tracks.t_born[updated] >= now - cfg.supersede_max_gap)]
    if young.size == 0:
        return none
    silent = tracks.status == CONFIRMED
    silent[updated] = False
    silent &= tracks.t_hit <= tracks.t_born[young].max()
    if 4 * updated.size < tracks.n:
        # A small batch against a large table: nearly every row is a candidate, and
        # the bound over whole columns costs less than gathering them; with one young
        # track a coarser one goes first, and the exact bound only sees the few left.
        x, P = _states_at(tracks, young, now, accel_var)
        reach = _within_reach(x, P, tracks, now, cfg, accel_var) if young.size == 1 else None
        if reach is not None:
            old = (silent & reach).nonzero()[0]
            old = old[_may_gate(x, P, tracks, old, now, cfg, accel_var)] if old.size else old
        else:
            near = _near_restart(x, P, tracks.x, tracks.P, tracks.t, tracks.t_hit, now, cfg,
                                 accel_var)
            old = (silent & near).nonzero()[0]
    else:
        old = silent.nonzero()[0]
        if old.size == 0:
            return none
        x, P = _states_at(tracks, young, now, accel_var)
        old = old[_may_gate(x, P, tracks, old, now, cfg, accel_var)]
    if old.size == 0:
        return none
    k, m = supersede(
        (x, P, tracks.t_born[young]),
        (tracks.x[:, old].T, tracks.P[:, :, old].transpose(2, 0, 1), tracks.t[old],
         tracks.t_hit[old]),
        now, cfg.supersede_max_gap, cfg.init_velocity_std, accel_var,
        cfg.supersede_probability,
    )
    rows, old = young[k], old[m]
    tracks.id[rows] = tracks.id[old]
    # The class evidence gathered on the old course is still about this target.
    tracks.class_evidence[:, rows] += tracks.class_evidence[:, old]
    return old


def continue_ids(
    tracks: TrackTable, lost: LostTracks, promoted: np.ndarray, updated: np.ndarray,
    now: float, cfg: TrackerConfig, accel_var: float,
) -> tuple[int, np.ndarray]:
    """Give new tracks the ids of the tracks they continue; the tracker's step 7.

    The tracks ``promoted`` by this batch first claim recently lost ones
    (:meth:`LostTracks.claim`, after forgetting those older than
    ``cfg.reacquire_window``); then young confirmed tracks take over coasting ones
    (:func:`superseded_rows`).

    Parameters
    ----------
    tracks : TrackTable
    lost : LostTracks
    promoted, updated : ndarray, intp
        Rows this batch confirmed, and rows it updated.
    now : float
    cfg : TrackerConfig
    accel_var : float

    Returns
    -------
    reacquired : int
        How many promoted tracks took a lost id.
    superseded : ndarray, intp
        Rows to remove without reporting a deletion (see :func:`superseded_rows`).
    """
    lost.expire(now, cfg.reacquire_window)
    reacquired = 0
    if promoted.size and len(lost):
        x, P = _states_at(tracks, promoted, now, accel_var)
        new, old_ids = lost.claim(x, P, now, accel_var)
        tracks.id[promoted[new]] = old_ids
        reacquired = int(new.size)
        rest = np.ones(promoted.size, dtype=bool)
        rest[new] = False
        if rest.any() and len(lost) and cfg.supersede_max_gap > 0:
            reacquired += _take_over_lost(tracks, lost, promoted[rest], x[rest], P[rest], now,
                                          cfg, accel_var)
    return reacquired, superseded_rows(tracks, updated, now, cfg, accel_var)


def _take_over_lost(
    tracks: TrackTable, lost: LostTracks, rows: np.ndarray, x: np.ndarray, P: np.ndarray,
    now: float, cfg: TrackerConfig, accel_var: float,
) -> int:
    """Newly confirmed tracks that continue a track lost in a manoeuvre take its id.

    A target that halts or turns sharply leaves its track coasting on the old course;
    when that track is deleted before the new one on the target confirms, the old
    track is lost rather than coasting, so :func:`superseded_rows` never sees the pair,
    and the lost track's straight-line prediction (:meth:`LostTracks.claim`) has run on
    past the halted target. The same restart test as :func:`supersede` (the lost
    track restarted where it was last detected, its velocity unknown) decides.

    Parameters
    ----------
    tracks : TrackTable
    lost : LostTracks
        The matched lost tracks are forgotten here.
    rows : ndarray, shape (K,), intp
        The promoted rows that claimed no lost track.
    x : ndarray, shape (K, 4)
    P : ndarray, shape (K, 4, 4)
        Their states at ``now``.
    now : float
    cfg : TrackerConfig
        ``supersede_max_gap``, ``init_velocity_std`` and ``supersede_probability``.
    accel_var : float
        Process noise of the predictions, (m/s^2)^2.

    Returns
    -------
    int
        How many took a lost id.
    """
    k, m = supersede(
        (x, P, tracks.t_born[rows]), (lost.x, lost.P, lost.t, lost.t_hit), now,
        cfg.supersede_max_gap, cfg.init_velocity_std, accel_var, cfg.supersede_probability,
    )
    if k.size:
        tracks.id[rows[k]] = lost.pop(m)
    return int(k.size)
