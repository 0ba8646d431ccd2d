"""Score alerts against truth incursions, and tracks against truth targets.

Two questions an analyst asks after a replay:

* **Alerts** — of the real incursions, which raised an alert, and how late
  (recall, latency)? Of the alerts raised, which were real (precision)?
  See :func:`score_alerts`.
* **Tracks** — how many track ids did each real target get (fragmentation), and how
  often did the id following a target change (id switches)? See :func:`track_metrics`.

Both need to know which truth target a track stood for at a given time. That
association is an input, not something this module guesses: it comes from the
per-step GOSPA assignment (:func:`assignment_records` turns a
:class:`~replay.scoring.gospa.GospaSeries` into records, :class:`AssociationTable` answers
``(track_id, t) -> target``) or from any other rule the caller prefers, passed as a
plain callable.

Inputs are plain dicts, as they come from scenario files and the alert log:

* truth incursion: ``{"target": int, "zone": str, "t_enter": float,
  "t_exit": float | None, "side": str, "cls": str}`` (``t_exit`` None: still inside
  at the end of the scenario);
* alert event: ``{"alert_id", "kind", "event": "open" | "update" | "close", "zone",
  "track_id", "t", "position": {"east", "north"}, ...}``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

NO_TARGET = -1
"""Target value in an :class:`AssignmentRecord` for a track associated with no truth."""

TrackToTruth = Callable[[int, float], "int | None"]


class AssignmentRecord(NamedTuple):
    """One (time, truth target, track) association from one evaluation step.

    Attributes
    ----------
    t : float
        Time of the step, seconds.
    target : int
        Truth target id, or :data:`NO_TARGET` when the track was present but
        associated with no truth at that step (a false track).
    track_id : int
        Track id.
    """

    t: float
    target: int
    track_id: int


def assignment_records(
    times: Sequence[float],
    truth_ids: Sequence[np.ndarray],
    track_ids: Sequence[np.ndarray],
    assignments: Sequence[np.ndarray],
) -> list[AssignmentRecord]:
    """Turn per-step assignments (e.g. :attr:`GospaSeries.assignments`) into records.

    Parameters
    ----------
    times : sequence of float, length K
        Time of each step.
    truth_ids : sequence of ndarray, each shape (N_k,), int
        Truth target ids at each step, in the order the truth positions were given.
    track_ids : sequence of ndarray, each shape (M_k,), int
        Track ids at each step, in the order the track positions were given.
    assignments : sequence of ndarray, each shape (N_k,), int
        Per truth, the index into that step's tracks, or -1 when missed.

    Returns
    -------
    list of AssignmentRecord
        One record per track per step: its target, or :data:`NO_TARGET`. Truths
        that were missed produce no record.
    """
    if not len(times) == len(truth_ids) == len(track_ids) == len(assignments):
        raise ValueError("times, truth_ids, track_ids and assignments must have one entry per step")
    records: list[AssignmentRecord] = []
    for t, truths, tracks, assignment in zip(times, truth_ids, track_ids, assignments, strict=True):
        truths = np.asarray(truths, dtype=np.int64)
        tracks = np.asarray(tracks, dtype=np.int64)
        assignment = np.asarray(assignment, dtype=np.int64)
        if assignment.shape != truths.shape:
            raise ValueError(
                f"at t={t}: {truths.shape[0]} truths but {assignment.shape[0]} assignments"
            )
        target_of_track = np.full(tracks.shape[0], NO_TARGET, dtype=np.int64)
        hit = assignment >= 0
        target_of_track[assignment[hit]] = truths[hit]
        records.extend(
            AssignmentRecord(float(t), int(g), int(k))
            for g, k in zip(target_of_track.tolist(), tracks.tolist(), strict=True)
        )
    return records


class AssociationTable:
    """Answer "which truth target was track ``k`` at time ``t``?" from assignment records.

    The answer is the target of the record for that track nearest in time to ``t``
    (the earlier one on a tie), or None when that record says :data:`NO_TARGET`, when
    the track has no record, or when the nearest record is more than ``max_gap``
    seconds away. Nearest rather than latest-before, because an alert can be raised
    at a detection time just before the first evaluation step that sees its track.

    Parameters
    ----------
    records : iterable of AssignmentRecord or (t, target, track_id)
        Associations, in any order.
    max_gap : float
        Largest time difference between a query and the record that answers it.

    Examples
    --------
    >>> table = AssociationTable([(0.0, 7, 101), (1.0, 7, 101), (2.0, -1, 101)])
    >>> table(101, 0.9), table(101, 2.2), table(999, 0.0)
    (7, None, None)
    """

    def __init__(self, records: Iterable[tuple[float, int, int]], max_gap: float = math.inf):
        self.max_gap = float(max_gap)
        by_track: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for t, target, track_id in records:
            by_track[int(track_id)].append((float(t), int(target)))
        self._times: dict[int, np.ndarray] = {}
        self._targets: dict[int, np.ndarray] = {}
        for track_id, rows in by_track.items():
            rows.sort()
            self._times[track_id] = np.array([r[0] for r in rows], dtype=np.float64)
            self._targets[track_id] = np.array([r[1] for r in rows], dtype=np.int64)

    def __call__(self, track_id: int, t: float) -> int | None:
        times = self._times.get(int(track_id))
        if times is None:
            return None
        i = int(np.searchsorted(times, t))
        # Candidates: the record before t (i - 1) and the one at or after it (i).
        if i == len(times) or (i > 0 and t - times[i - 1] <= times[i] - t):
            i -= 1
        if abs(times[i] - t) > self.max_gap:
            return None
        target = int(self._targets[track_id][i])
        return None if target == NO_TARGET else target


# --------------------------------------------------------------------------- tracks


@dataclass(frozen=True)
class TargetTrackStats:
    """How one truth target was tracked.

    Attributes
    ----------
    target : int
    n_tracks : int
        Distinct track ids ever associated with it (1 is ideal; 0: never tracked).
    id_switches : int
        Times the associated track id changed between consecutive steps at which
        the target was associated (steps where it was missed are skipped, so
        A, missed, A is no switch and A, missed, B is one).
    steps_tracked : int
        Steps at which the target had a track.
    track_ids : tuple of int
        The distinct ids, in order of first association.
    """

    target: int
    n_tracks: int
    id_switches: int
    steps_tracked: int
    track_ids: tuple[int, ...]


@dataclass(frozen=True)
class TrackMetrics:
    """Track continuity over a run.

    Attributes
    ----------
    per_target : dict of int to TargetTrackStats
    fragmentation : float
        Mean distinct track ids per target, over targets tracked at least once
        (NaN when none was). Targets never tracked show up in ``never_tracked``.
    id_switches : int
        Sum over targets.
    never_tracked : tuple of int
        Targets passed in ``targets`` that no track was ever associated with.
    """

    per_target: dict[int, TargetTrackStats]
    fragmentation: float
    id_switches: int
    never_tracked: tuple[int, ...]


def track_metrics(
    records: Iterable[tuple[float, int, int]], targets: Iterable[int] | None = None
) -> TrackMetrics:
    """Fragmentation and id switches per truth target from per-step assignment records.

    Parameters
    ----------
    records : iterable of AssignmentRecord or (t, target, track_id)
        Per-step associations, e.g. from :func:`assignment_records`; rows with
        :data:`NO_TARGET` are ignored. At most one track per target per step is
        expected (as a one-to-one assignment such as GOSPA's gives); should there
        be several, they are taken in track-id order.
    targets : iterable of int, optional
        All truth targets, so that those never tracked are reported.

    Returns
    -------
    TrackMetrics
    """
    by_target: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for t, target, track_id in records:
        if target != NO_TARGET:
            by_target[int(target)].append((float(t), int(track_id)))
    per_target: dict[int, TargetTrackStats] = {}
    for target, rows in sorted(by_target.items()):
        rows.sort()
        ids = np.array([k for _, k in rows], dtype=np.int64)
        # Order of first appearance, for a readable list.
        _, first = np.unique(ids, return_index=True)
        distinct = tuple(int(k) for k in ids[np.sort(first)])
        per_target[target] = TargetTrackStats(
            target=target,
            n_tracks=len(distinct),
            id_switches=int(np.count_nonzero(ids[1:] != ids[:-1])),
            steps_tracked=len(rows),
            track_ids=distinct,
        )
    never = tuple(sorted(set(targets or ()) - per_target.keys()))
    counts = [s.n_tracks for s in per_target.values()]
    return TrackMetrics(
        per_target=per_target,
        fragmentation=float(np.mean(counts)) if counts else math.nan,
        id_switches=sum(s.id_switches for s in per_target.values()),
        never_tracked=never,
    )


# --------------------------------------------------------------------------- alerts

Outcome = Literal["true", "duplicate", "false"]


@dataclass(frozen=True)
class AlertMatch:
    """What one opened alert was judged to be.

    Attributes
    ----------
    alert_id : Any
    kind : str
    zone : str
    track_id : int
    t : float
        Open time.
    target : int or None
        Truth target its track stood for at ``t``.
    outcome : {"true", "duplicate", "false"}
    episode : int or None
        Index into the incursions of the episode it matched.
    """

    alert_id: Any
    kind: str
    zone: str
    track_id: int
    t: float
    target: int | None
    outcome: Outcome
    episode: int | None


@dataclass(frozen=True)
class EpisodeMatch:
    """How one truth incursion was alerted.

    Attributes
    ----------
    episode : int
        Index into the incursions.
    target : int
    zone : str
    t_enter : float
    alert_id : Any or None
        The first alert that matched it; None when missed.
    latency : float or None
        That alert's open time minus ``t_enter``, seconds (negative: early).
    n_alerts : int
        All alerts that matched it (1 + duplicates).
    """

    episode: int
    target: int
    zone: str
    t_enter: float
    alert_id: Any
    latency: float | None
    n_alerts: int


@dataclass(frozen=True)
class KindScores:
    """Alert scores for one alert kind.

    Attributes
    ----------
    kind : str
    n_truth : int
        Truth incursions.
    n_opened : int
        Alerts of this kind opened.
    n_true, n_duplicate, n_false : int
        Opened alerts judged true (first match of an episode), duplicate (a later
        match of an already matched episode) and false (no episode); they sum to
        ``n_opened``.
    recall : float
        Matched episodes / ``n_truth`` (NaN when there is no truth).
    precision : float
        (``n_true`` + ``n_duplicate``) / ``n_opened``: alerts about a real incursion.
        NaN when nothing was opened.
    precision_strict : float
        ``n_true`` / ``n_opened``: duplicates counted as false.
    latencies : ndarray, shape (n_matched,), float64
        Per matched episode, first alert open time minus ``t_enter``.
    latency_median, latency_p90, latency_max : float
        Of ``latencies`` (p90 by linear interpolation); NaN when nothing matched.
    episodes : tuple of EpisodeMatch
    alerts : tuple of AlertMatch
    """

    kind: str
    n_truth: int
    n_opened: int
    n_true: int
    n_duplicate: int
    n_false: int
    recall: float
    precision: float
    precision_strict: float
    latencies: np.ndarray
    latency_median: float
    latency_p90: float
    latency_max: float
    episodes: tuple[EpisodeMatch, ...]
    alerts: tuple[AlertMatch, ...]

    def summary(self) -> dict[str, float | int]:
        """The headline numbers, flat, for a report table."""
        return {
            "n_truth": self.n_truth,
            "n_opened": self.n_opened,
            "n_true": self.n_true,
            "n_duplicate": self.n_duplicate,
            "n_false": self.n_false,
            "recall": self.recall,
            "precision": self.precision,
            "precision_strict": self.precision_strict,
            "latency_median": self.latency_median,
            "latency_p90": self.latency_p90,
            "latency_max": self.latency_max,
        }


@dataclass(frozen=True)
class AlertScores:
    """Alert scores for a run.

    Attributes
    ----------
    rule : str
        The matching rule, in words, with the parameters used.
    by_kind : dict of str to KindScores
        One entry per scored kind.
    opened_by_kind : dict of str to int
        Alerts opened, per kind, scored or not.
    """

    rule: str
    by_kind: dict[str, KindScores]
    opened_by_kind: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> KindScores:
        return self.by_kind[kind]


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _matching_rule(tolerance: float, lead: Mapping[str, float]) -> str:
    leads = "".join(
        f" For kind {kind!r} the window opens a further {s:g} s before t_enter."
        for kind, s in lead.items()
    )
    return (
        "Only 'open' alert events are scored; an alert lasts from its open to its close "
        "event (to the end when never closed). An alert matches a truth incursion when "
        "the zones are equal, the alert's track is associated with the incursion's target at "
        f"the alert's open time, and the alert was open at some time in [t_enter - "
        f"{tolerance:g} s, t_exit + {tolerance:g} s] (no upper bound while t_exit is None): "
        "an alert that opened early, on a target near the line, and was still open when it "
        f"crossed is a warning, not a false alarm.{leads} For such kinds the open time "
        "itself must fall in the window. Alerts are taken in "
        "order of open time; each takes an unmatched candidate episode if there is one "
        "(nearest in time to its interval, then earliest t_enter), else it is a duplicate "
        "of the nearest matched one. The first alert of an episode is 'true' and gives its "
        "latency (t_open - t_enter, negative when early); later ones are 'duplicate' "
        "(fragmented tracks or re-opened alerts); an alert with no candidate is 'false'. "
        "recall = matched episodes / truth episodes; precision = (true + duplicate) / "
        "opened; precision_strict = true / opened."
    )


@dataclass(frozen=True)
class TruthEvent:
    """A truth episode one alert kind should report, with its matching window.

    Attributes
    ----------
    target : int
    zone : str
    t_ref : float
        The moment latency is measured from (entry, exit, the loiter time reached).
    t_lo, t_hi : float
        An alert of the kind matches when it was open at some time in ``[t_lo, t_hi]``
        (``t_hi`` may be inf).
    info : dict
        The source episode, for reports.
    """

    target: int
    zone: str
    t_ref: float
    t_lo: float
    t_hi: float
    info: Mapping[str, Any] = field(default_factory=dict)


def alert_close_times(alert_events: Iterable[Mapping[str, Any]]) -> dict[Any, float]:
    """Close time of every alert id that has a ``close`` event."""
    return {
        a["alert_id"]: float(a["t"]) for a in alert_events if a.get("event") == "close"
    }


def score_kind(
    kind: str,
    events: Sequence[TruthEvent],
    alert_events: Sequence[Mapping[str, Any]],
    track_to_truth: TrackToTruth,
    *,
    count_recall: bool = True,
    overlap: bool = True,
) -> KindScores:
    """Match one kind's opened alerts to truth events (see :func:`_matching_rule`).

    Parameters
    ----------
    kind : str
    events : sequence of TruthEvent
        What alerts of this kind should report.
    alert_events : sequence of dict
        Every alert event (open/update/close) of the run; close events end an alert.
    track_to_truth : callable (track_id, t) -> int or None
    count_recall : bool
        False for kinds whose truth cannot be known from positions alone
        (``lost_inside``: the truth says where a target was, not whether its track was
        lost); ``events`` then only decide whether each alert was about a real
        situation, and recall is NaN.
    overlap : bool
        True: an alert matches when it was open at some time in an event's window.
        False: its open time must fall in the window (for kinds meant to fire early,
        whose window already reaches back by their lead).

    Returns
    -------
    KindScores
    """
    closes = alert_close_times(alert_events)
    by_key: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        by_key[(e.zone, int(e.target))].append(i)
    alerts = sorted(
        (a for a in alert_events if a.get("event") == "open" and a.get("kind") == kind),
        key=lambda a: (float(a["t"]), str(a["alert_id"])),
    )
    first_alert: dict[int, AlertMatch] = {}
    n_matches: dict[int, int] = defaultdict(int)
    matches: list[AlertMatch] = []
    for a in alerts:
        t = float(a["t"])
        t_close = closes.get(a["alert_id"], math.inf)
        zone = str(a["zone"])
        track_id = int(a["track_id"])
        target = track_to_truth(track_id, t)
        candidates = []
        if target is not None:
            for i in by_key.get((zone, int(target)), ()):
                e = events[i]
                # The alert's open interval [t, t_close] (or just t) meets the window.
                if t <= e.t_hi and (t_close if overlap else t) >= e.t_lo:
                    gap = max(e.t_lo - t, t - e.t_hi, 0.0)
                    candidates.append((i in first_alert, gap, e.t_ref, i))
        episode: int | None = None
        outcome: Outcome = "false"
        if candidates:
            already, _, _, episode = min(candidates)
            outcome = "duplicate" if already else "true"
            n_matches[episode] += 1
        match = AlertMatch(a["alert_id"], kind, zone, track_id, t, target, outcome, episode)
        if episode is not None and outcome == "true":
            first_alert[episode] = match
        matches.append(match)

    episode_matches = []
    for i, e in enumerate(events if count_recall else ()):
        m = first_alert.get(i)
        episode_matches.append(
            EpisodeMatch(
                episode=i,
                target=int(e.target),
                zone=e.zone,
                t_enter=e.t_ref,
                alert_id=None if m is None else m.alert_id,
                latency=None if m is None else m.t - e.t_ref,
                n_alerts=n_matches.get(i, 0),
            )
        )
    latencies = np.array(
        [em.latency for em in episode_matches if em.latency is not None], dtype=np.float64
    )
    n_true = sum(m.outcome == "true" for m in matches)
    n_duplicate = sum(m.outcome == "duplicate" for m in matches)
    has_latency = latencies.size > 0
    n_truth = len(events) if count_recall else 0
    return KindScores(
        kind=kind,
        n_truth=n_truth,
        n_opened=len(matches),
        n_true=n_true,
        n_duplicate=n_duplicate,
        n_false=len(matches) - n_true - n_duplicate,
        recall=_ratio(len(first_alert), n_truth),
        precision=_ratio(n_true + n_duplicate, len(matches)),
        precision_strict=_ratio(n_true, len(matches)),
        latencies=latencies,
        latency_median=float(np.median(latencies)) if has_latency else math.nan,
        latency_p90=float(np.percentile(latencies, 90)) if has_latency else math.nan,
        latency_max=float(latencies.max()) if has_latency else math.nan,
        episodes=tuple(episode_matches),
        alerts=tuple(matches),
    )


def incursion_events(
    incursions: Sequence[Mapping[str, Any]], tolerance: float, lead: float = 0.0
) -> list[TruthEvent]:
    """Events for ``incursion`` (and, with ``lead``, ``predicted_incursion``) alerts."""
    return [
        TruthEvent(
            int(e["target"]),
            str(e["zone"]),
            float(e["t_enter"]),
            float(e["t_enter"]) - tolerance - lead,
            math.inf if e.get("t_exit") is None else float(e["t_exit"]) + tolerance,
            e,
        )
        for e in incursions
    ]


def exit_events(
    incursions: Sequence[Mapping[str, Any]], tolerance: float, lag: float
) -> list[TruthEvent]:
    """Events for ``exit`` alerts: each incursion that ended, at its ``t_exit``.

    ``lag`` allows for the rule's ``dwell_close`` and the track's filter lag.
    """
    return [
        TruthEvent(
            int(e["target"]), str(e["zone"]), float(e["t_exit"]),
            float(e["t_exit"]) - tolerance, float(e["t_exit"]) + tolerance + lag, e,
        )
        for e in incursions
        if e.get("t_exit") is not None
    ]


def by_target(
    times: np.ndarray, ids: Sequence[np.ndarray], values: Sequence[np.ndarray], columns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Per-step truth samples flattened and ordered by target, then time.

    Parameters
    ----------
    times : ndarray, shape (T,)
    ids : sequence of ndarray, each shape (N_t,), int
    values : sequence of ndarray, each shape (N_t, >= columns)
    columns : int
        Leading columns of ``values`` kept.

    Returns
    -------
    t, id : ndarray, shape (S,)
    value : ndarray, shape (S, columns)
    runs : list of (lo, hi)
        Each target's rows ``lo:hi``, in time order.
    """
    t_all = np.concatenate([np.full(len(i), t) for t, i in zip(times, ids, strict=True)])
    id_all = np.concatenate([np.asarray(i, dtype=np.int64) for i in ids])
    v_all = np.concatenate([np.asarray(v, dtype=float)[:, :columns] for v in values])
    order = np.lexsort((t_all, id_all))
    t_all, id_all, v_all = t_all[order], id_all[order], v_all[order]
    cuts = np.flatnonzero(np.diff(id_all)) + 1
    runs = list(zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(id_all)].tolist(), strict=True))
    return t_all, id_all, v_all, runs


def loiter_events(
    times: np.ndarray,
    ids: Sequence[np.ndarray],
    positions: Sequence[np.ndarray],
    zones: Sequence[tuple[str, Any]],
    *,
    radius: float,
    time: float,
    band: float,
    radius_close: float,
    tolerance: float,
) -> list[TruthEvent]:
    """Truth loitering, by the alert rule's own definition applied to the truth.

    A target loiters in a zone when it is inside it or within ``band`` metres and has
    stayed within ``radius`` of the point where that dwell began for ``time`` seconds;
    the episode lasts until it moves ``radius_close`` from that point or leaves the band.

    Parameters
    ----------
    times : ndarray, shape (T,), float
    ids : sequence of ndarray, each shape (N_t,), int
    positions : sequence of ndarray, each shape (N_t, 2), float
        East/north metres.
    zones : sequence of (name, shapely geometry)
    radius, time, band, radius_close, tolerance : float
        Metres and seconds, as the ``loitering`` rule.

    Returns
    -------
    list of TruthEvent
        ``t_ref`` is when ``time`` was reached; the window runs to the episode's end.
    """
    import shapely

    if not len(times):
        return []
    t_all, id_all, xy_all, runs = by_target(times, ids, positions, 2)
    out: list[TruthEvent] = []
    for name, geom in zones:
        near = shapely.distance(geom, shapely.points(xy_all)) <= band
        for lo, hi in runs:
            target = int(id_all[lo])
            anchor: np.ndarray | None = None
            t_anchor = 0.0
            start: float | None = None
            for k in range(lo, hi):
                t, xy = float(t_all[k]), xy_all[k]
                if start is not None:
                    assert anchor is not None
                    if not near[k] or np.hypot(*(xy - anchor)) > radius_close:
                        out.append(TruthEvent(target, name, start, start - tolerance,
                                              t + tolerance, {"t_start": t_anchor}))
                        start, anchor = None, None
                    continue
                if not near[k]:
                    anchor = None
                    continue
                if anchor is None or np.hypot(*(xy - anchor)) > radius:
                    anchor, t_anchor = xy, t
                elif t - t_anchor >= time:
                    start = t_anchor + time
            if start is not None:
                out.append(TruthEvent(target, name, start, start - tolerance, math.inf,
                                      {"t_start": t_anchor}))
    return out


def score_alerts(
    incursions: Sequence[Mapping[str, Any]],
    alert_events: Iterable[Mapping[str, Any]],
    track_to_truth: TrackToTruth,
    *,
    kinds: Sequence[str] = ("incursion",),
    tolerance: float = 2.0,
    lead: Mapping[str, float] | None = None,
) -> AlertScores:
    """Recall, precision and latency of incursion-like alerts against truth incursions.

    Parameters
    ----------
    incursions : sequence of dict
        Truth incursion episodes (``target``, ``zone``, ``t_enter``, ``t_exit``).
        Only pass those inside the scored time span.
    alert_events : iterable of dict
        The alert log: dicts with at least ``alert_id``, ``kind``, ``event``,
        ``zone``, ``track_id`` and ``t``; ``close`` events end alerts.
    track_to_truth : callable (track_id, t) -> int or None
        Which truth target a track stood for at time ``t`` (e.g. an
        :class:`AssociationTable`).
    kinds : sequence of str
        Alert kinds to score, each separately against the same incursions (e.g.
        ``("incursion", "predicted_incursion")``). Exit and loitering have their own
        truth events (:func:`exit_events`, :func:`loiter_events`, :func:`score_kind`).
    tolerance : float
        Seconds of slack on both ends of an episode, for time stamps and the noise
        of a position near the boundary.
    lead : dict of str to float, optional
        Extra seconds before ``t_enter`` in which a kind may match, for kinds that
        are meant to fire early (``{"predicted_incursion": horizon}``); their
        latency is then negative, a warning time.

    Returns
    -------
    AlertScores
        ``rule`` states the matching rule in words.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    lead = dict(lead or {})
    events = list(alert_events)
    opened_by_kind: dict[str, int] = defaultdict(int)
    for a in events:
        if a.get("event") == "open":
            opened_by_kind[str(a["kind"])] += 1
    by_kind = {
        kind: score_kind(
            kind,
            incursion_events(incursions, tolerance, lead.get(kind, 0.0)),
            events,
            track_to_truth,
            overlap=kind not in lead,
        )
        for kind in kinds
    }
    return AlertScores(
        rule=_matching_rule(tolerance, lead), by_kind=by_kind, opened_by_kind=dict(opened_by_kind)
    )
