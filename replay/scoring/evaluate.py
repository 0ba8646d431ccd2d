"""Score an offline replay's result against ground truth: ``bufferzone eval RESULT``.

Tracks: GOSPA (:mod:`replay.scoring.gospa`) at every step where the result has a track
picture and the truth has a sample at the same time, with its localisation, missed
and false parts; the per-step GOSPA assignment then says which truth each track stood
for, giving fragmentation (distinct track ids per truth) and id switches
(:func:`replay.scoring.metrics.track_metrics`).

Alerts: opened alerts against the truth's incursion events
(:func:`replay.scoring.metrics.score_alerts`, whose matching rule is printed with the
scores). Latency is the alert's open time minus the truth's entry time; for each
matched incursion it is split at the first step where the target's track (by the
GOSPA association) has its point estimate inside the zone: *tracking* (entry to
track inside: detection, confirmation, filter lag) and *rule* (track inside to
alert: P(inside) >= p_open held for dwell_open, evaluated every alert_interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from fusion.alerting.rules import load_rules
from fusion.messages import unpack_map
from replay.offline import TrackPicture, decode_tracks
from replay.progress import progress
from replay.recording import RecordingReader
from replay.scenario_meta import incursions_for, zones_from_metadata
from replay.scoring.gospa import GospaSeries, gospa_series
from replay.scoring.metrics import (
    AlertScores,
    AssociationTable,
    TrackMetrics,
    assignment_records,
    exit_events,
    incursion_events,
    loiter_events,
    score_alerts,
    score_kind,
    track_metrics,
)
from replay.scoring.probes import probe_events
from sensors.truth import Truth, decode_truth

ALERT_KINDS = ("incursion", "predicted_incursion", "exit", "loitering", "lost_inside", "probe")
# Below this share of truth positions with a track within the cut-off, the truth and
# the tracks almost certainly describe different runs (a working tracker holds most).
MIN_MATCHED_SHARE = 0.2


# The shipped loitering rule (fusion/data/rules.toml), applied to the truth.
LOITER_DEFAULTS = {"radius": 50.0, "time": 120.0, "band": 200.0, "radius_close": 100.0}


class ScoringError(ValueError):
    """A file that cannot be scored as asked, with what to do instead."""


@dataclass
class TruthSamples:
    """Truth positions by time, and the incursion events.

    Attributes
    ----------
    times : ndarray, shape (T,), float64
    ids : list of ndarray, each shape (N_t,), int64
    x : list of ndarray, each shape (N_t, 4), float64
    incursions : list of dict or None
    name : str or None
        The scenario the truth was simulated from, when the file says.
    """

    times: np.ndarray
    ids: list[np.ndarray]
    x: list[np.ndarray]
    incursions: list[dict[str, Any]] | None = None
    name: str | None = None


@dataclass
class ResultData:
    """A result file, decoded.

    Attributes
    ----------
    metadata : dict
    pictures : list of TrackPicture
        In time order.
    alerts : list of dict
        Alert events in file (emission) order.
    truth : TruthSamples or None
        From the result's own ``truth.*`` frames, when it has any.
    status : dict
    report_message : str
        How reading the file ended.
    """

    metadata: dict[str, Any]
    pictures: list[TrackPicture]
    alerts: list[dict[str, Any]]
    truth: TruthSamples | None
    status: dict[str, Any] = field(default_factory=dict)
    report_message: str = ""
    complete: bool = True

    @property
    def is_result(self) -> bool:
        """True for a ``replay --offline`` result, False for a recording."""
        return self.metadata.get("kind") == "result"

    @property
    def incomplete(self) -> str | None:
        """Why this result covers less than its recording, or None when it is whole.

        A result is whole when its own file ends cleanly with the final ``status``
        frame and that frame says the source recording was read to its end.
        """
        if not self.complete:
            return f"the result file itself is cut short ({self.report_message})"
        if not self.status:
            return "the result has no final status frame (its replay did not finish)"
        source = self.status.get("source_report") or {}
        if source and source.get("status") != "complete":
            return f"its recording was not read to the end ({source.get('message')})"
        return None


def _truth_from_frames(samples: dict[float, tuple[np.ndarray, np.ndarray]]) -> TruthSamples | None:
    if not samples:
        return None
    times = np.array(sorted(samples), dtype=np.float64)
    return TruthSamples(times, [samples[t][0] for t in times], [samples[t][1] for t in times])


def read_result(path: str | Path, show_progress: bool | None = None) -> ResultData:
    """Decode a result (or any recording: its truth frames are read the same way)."""
    pictures: list[TrackPicture] = []
    alerts: list[dict[str, Any]] = []
    truth: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    status: dict[str, Any] = {}
    with (
        RecordingReader(path) as reader,
        progress(
            reader.file_size, f"read {Path(path).name}", unit="B", enabled=show_progress
        ) as bar,
    ):
        for frame in reader:
            bar.update(len(frame.topic) + len(frame.payload) + 18)
            topic = bytes(frame.topic)
            if topic == b"track.update":
                pictures.append(decode_tracks(frame.payload))
            elif topic.startswith(b"alert."):
                event = unpack_map(frame.payload)
                event.pop("v", None)
                event.pop("type", None)
                alerts.append(event)
            elif topic.startswith(b"truth."):
                t, ids, x, _ = decode_truth(frame.payload)
                truth[round(t, 6)] = (ids.copy(), x.copy())
            elif topic == b"status":
                status = unpack_map(frame.payload)
        metadata = reader.header.metadata
        report = reader.report
    pictures.sort(key=lambda p: p.t)
    samples = _truth_from_frames(truth)
    if samples is not None:
        samples.name = (metadata.get("scenario") or {}).get("name")
    return ResultData(
        metadata,
        pictures,
        alerts,
        samples,
        status,
        "" if report is None else report.message(),
        complete=report is None or report.complete,
    )


def load_truth(path: str | Path) -> TruthSamples:
    """Truth from a ``.npz`` (``bufferzone sensors --truth-out``) or a recording."""
    path = Path(path)
    if path.suffix == ".npz":
        truth = Truth.load(path)
        return TruthSamples(
            truth.times.astype(np.float64),
            [truth.step(k)[0] for k in range(len(truth))],
            [truth.step(k)[1] for k in range(len(truth))],
            list(truth.incursions),
            name=truth.name,
        )
    data = read_result(path)
    if data.truth is None:
        raise ValueError(f"{path}: no truth.* messages in this recording")
    data.truth.incursions = incursions_for(data.metadata.get("scenario") or {})
    return data.truth


def check_scorable(
    result: ResultData,
    truth: TruthSamples | None,
    result_path: str | Path,
    truth_path: str | Path | None = None,
    partial: bool = False,
) -> list[str]:
    """Refuse what cannot be scored; return warnings about what can, but may mislead.

    Parameters
    ----------
    result : ResultData
    truth : TruthSamples, optional
        The ``--truth`` given, if any.
    result_path, truth_path : str or Path
        For the messages.
    partial : bool
        Score an incomplete result (with a warning) instead of refusing it.

    Returns
    -------
    list of str

    Raises
    ------
    ScoringError
        A recording instead of a result, or an incomplete result without ``partial``.
    """
    if not result.is_result:
        raise ScoringError(
            f"{result_path} is a recording, not a result: track it first with "
            f"'bufferzone replay {result_path} --offline --out RESULT.bzres', "
            "then 'bufferzone eval RESULT.bzres'"
        )
    warnings: list[str] = []
    why = result.incomplete
    if why:
        if not partial:
            raise ScoringError(
                f"{result_path} is incomplete: {why}. Scores would count the missing part "
                "as missed; replay the whole recording again, or pass --partial to score "
                "what is there"
            )
        warnings.append(f"{result_path} is incomplete ({why}); scores cover only its part")
    if truth is not None:
        scenario = result.metadata.get("scenario") or {}
        ours = scenario.get("name") or (result.truth.name if result.truth else None)
        if ours and truth.name and ours != truth.name:
            warnings.append(
                f"--truth {truth_path} is from scenario {truth.name!r}, this result from "
                f"{ours!r}: the scores compare different runs"
            )
        elif not ours:
            warnings.append(
                f"{result_path} names no scenario (a live recording made without "
                f"--scenario): nothing shows that --truth {truth_path} is from the same run"
            )
    return warnings


@dataclass
class Evaluation:
    """Everything ``eval`` computed, and the inputs the report draws.

    Attributes
    ----------
    summary : dict
        The JSON-ready summary (see :func:`evaluate`).
    times : ndarray, shape (K,), float64
        Evaluated step times.
    gospa : GospaSeries
    tracks : TrackMetrics
    alerts : AlertScores or None
    result : ResultData
    truth : TruthSamples
    zones : list of (name, shapely geometry), local metres
    """

    summary: dict[str, Any]
    times: np.ndarray
    gospa: GospaSeries
    tracks: TrackMetrics
    alerts: AlertScores | None
    result: ResultData
    truth: TruthSamples
    zones: list[tuple[str, Any]]


def _zone_mismatch(alert_zones: list[str] | None, incursions: list[dict[str, Any]]) -> list[str]:
    """A warning when the truth's incursions are into zones the replay's rules never had."""
    if alert_zones is None:  # a result from before the field: nothing to compare
        return []
    unknown = sorted({str(e["zone"]) for e in incursions} - set(alert_zones))
    if not unknown:
        return []
    return [f"the truth's incursions are into zone(s) {', '.join(unknown)}, which this "
            f"result's rules did not have (they ran on {', '.join(alert_zones) or 'none'}; "
            "replayed with --zones?): those incursions all score as missed"]


def _finite(v: Any) -> Any:
    """NaN and inf as None, so the JSON is standard."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return _finite(float(v))
    return v


def evaluate(
    result: ResultData,
    truth: TruthSamples | None = None,
    *,
    c: float = 100.0,
    p: float = 2.0,
    alpha: float = 2.0,
    tolerance: float = 2.0,
    predicted_lead: float = 60.0,
    end_grace: float = 10.0,
    exit_lag: float = 10.0,
    loiter: dict[str, float] | None = None,
    probe: dict[str, float] | None = None,
) -> Evaluation:
    """Score a decoded result against truth.

    Parameters
    ----------
    result : ResultData
    truth : TruthSamples, optional
        Defaults to the result's own truth frames and its header's incursions.
    c, p, alpha : float
        GOSPA cut-off (m), order and cardinality weight.
    tolerance : float
        Seconds of slack around an incursion when matching alerts.
    predicted_lead : float
        How far before entry a ``predicted_incursion`` may open and still match
        (the rule's horizon).
    end_grace : float
        Incursions entering in the last ``end_grace`` seconds of the evaluated span
        are not scored: no confirmed track and dwell can alert them in time.
    exit_lag : float
        Seconds after the truth's exit in which an ``exit`` alert still matches (the
        rule's ``dwell_close`` plus the track's lag).
    loiter : dict, optional
        ``radius``, ``time``, ``band``, ``radius_close`` of the loitering rule the
        truth's loitering is judged by (default: the shipped rules').
    probe : dict, optional
        ``horizon`` (the predicted-incursion rule's) and ``max_distance`` (the probe
        rule's) the truth's probes are judged by (default: the shipped rules').

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        When there is no truth, or no step where both truth and tracks exist.
    """
    scenario = result.metadata.get("scenario") or {}
    if truth is None:
        truth = result.truth
        if truth is None:
            raise ValueError("the result holds no truth; pass --truth RECORDING_OR_NPZ")
        truth.incursions = incursions_for(scenario)
    truth_at = {round(float(t), 6): k for k, t in enumerate(truth.times)}
    steps = [
        (pic, truth_at[round(pic.t, 6)]) for pic in result.pictures if round(pic.t, 6) in truth_at
    ]
    if not steps:
        raise ValueError("no step has both a track picture and a truth sample at the same time")
    times = np.array([pic.t for pic, _ in steps])
    truth_pos = [truth.x[k][:, :2] for _, k in steps]
    truth_ids = [truth.ids[k] for _, k in steps]
    series = gospa_series(truth_pos, [pic.x[:, :2] for pic, _ in steps], c, p, alpha)
    n_truth_points = sum(len(ids) for ids in truth_ids)
    n_tracked = sum(int((np.asarray(a) >= 0).sum()) for a in series.assignments)
    matched_share = n_tracked / n_truth_points if n_truth_points else math.nan
    records = assignment_records(
        times.tolist(), truth_ids, [pic.ids for pic, _ in steps], series.assignments
    )
    targets = np.unique(np.concatenate(truth_ids)) if truth_ids else np.empty(0, np.int64)
    tmetrics = track_metrics(records, targets.tolist())
    step = float(np.median(np.diff(times))) if times.size > 1 else 1.0

    zones: list[tuple[str, Any]] = []
    if "zones" in scenario:
        zones = [(z.name, z.geometry) for z in zones_from_metadata(scenario)[0]]

    summary: dict[str, Any] = {
        "warnings": (
            [
                f"only {matched_share:.0%} of truth positions have a track within {c:g} m: "
                "the truth is probably from another run or scenario"
            ]
            if matched_share < MIN_MATCHED_SHARE
            else []
        ),
        "matched_share": matched_share,
        "tracker": result.metadata.get("tracker", "?"),
        "scenario": scenario.get("name"),
        "steps": int(times.size),
        "t_span": [float(times[0]), float(times[-1])],
        "gospa": {
            "c": c,
            "p": p,
            "alpha": alpha,
            "mean": series.summary(),
            "note": "localisation/missed/false are in m^p and sum to distance^p per step; "
            "'distance' is the mean of the per-step GOSPA distance (m)",
        },
        "tracks": {
            "targets": int(targets.size),
            "targets_tracked": len(tmetrics.per_target),
            "never_tracked": len(tmetrics.never_tracked),
            "fragmentation": tmetrics.fragmentation,
            "id_switches": tmetrics.id_switches,
        },
    }
    scores = None
    if truth.incursions is None:
        summary["alerts"] = {"note": "no incursion list for this truth; alerts not scored"}
    else:
        t0, t1 = float(times[0]), float(times[-1])
        scored = [e for e in truth.incursions if t0 <= e["t_enter"] <= t1 - end_grace]
        summary["warnings"] += _zone_mismatch(result.metadata.get("alert_zones"), scored)
        table = AssociationTable(records, max_gap=2 * step)
        scores = score_alerts(
            scored,
            result.alerts,
            table,
            kinds=("incursion", "predicted_incursion"),
            tolerance=tolerance,
            lead={"predicted_incursion": predicted_lead},
        )
        ended = [e for e in truth.incursions if e.get("t_exit") is not None
                 and t0 <= e["t_exit"] <= t1 - end_grace]
        scores.by_kind["exit"] = score_kind(
            "exit", exit_events(ended, tolerance, exit_lag), result.alerts, table
        )
        if zones:
            lo = {**LOITER_DEFAULTS, **(loiter or {})}
            steps_k = [k for _, k in steps]
            loiters = loiter_events(
                times, [truth.ids[k] for k in steps_k], [truth.x[k] for k in steps_k], zones,
                tolerance=tolerance, **lo,
            )
            loiters = [e for e in loiters if e.t_ref <= t1 - end_grace]
            scores.by_kind["loitering"] = score_kind(
                "loitering", loiters, result.alerts, table
            )
            probes = probe_events(
                times, [truth.ids[k] for k in steps_k], [truth.x[k] for k in steps_k], zones,
                tolerance=tolerance, **{**_shipped_probe_rule(), **(probe or {})},
            )
            probes = [e for e in probes if e.t_ref <= t1 - end_grace]
            scores.by_kind["probe"] = score_kind(
                "probe", probes, result.alerts, table, overlap=False
            )
        # A lost track is looked up by its last association, however long ago.
        last_seen = AssociationTable(records)
        scores.by_kind["lost_inside"] = score_kind(
            "lost_inside",
            incursion_events(truth.incursions, tolerance),
            result.alerts,
            last_seen,
            count_recall=False,
        )
        summary["alerts"] = _alert_summary(
            scores, scored, truth.incursions, records, steps, zones, end_grace, t0, t1
        )
        if "probe" in scores.by_kind:
            summary["alerts"]["predicted_incursion"]["false_then_probe"] = _false_then_probe(
                scores, result.alerts
            )
    return Evaluation(_finite(summary), times, series, tmetrics, scores, result, truth, zones)


def _false_then_probe(scores: AlertScores, alerts: list[dict[str, Any]]) -> int:
    """False predicted incursions that a true probe alert followed: the warning was
    wrong about an entry, but right that the target came for the line."""
    probe_true = {a.alert_id for a in scores.by_kind["probe"].alerts if a.outcome == "true"}
    followed = {
        a.get("related_alert_id") for a in alerts
        if a.get("kind") == "probe" and a.get("event") == "open" and a["alert_id"] in probe_true
    }
    pred = scores.by_kind["predicted_incursion"].alerts
    return sum(1 for a in pred if a.outcome == "false" and a.alert_id in followed)


def _shipped_probe_rule() -> dict[str, float]:
    """The shipped rules' probe definition: the predicted-incursion horizon and the
    probe rule's closest approach."""
    rules = load_rules().default
    return {"horizon": rules.predicted_incursion.horizon, "max_distance": rules.probe.max_distance}


def _alert_summary(
    scores: AlertScores,
    scored: list[dict[str, Any]],
    all_incursions: list[dict[str, Any]],
    records: list[Any],
    steps: list[tuple[TrackPicture, int]],
    zones: list[tuple[str, Any]],
    end_grace: float,
    t0: float,
    t1: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": scores.rule
        + (
            f" Incursions scored: t_enter in [{t0:g}, {t1:g} - {end_grace:g}] s "
            f"({len(scored)} of {len(all_incursions)}); alert track -> truth by the "
            "per-step GOSPA assignment (nearest step within 2 steps). exit: matched to "
            "the truth's exit time (window t_exit - tolerance .. t_exit + tolerance + "
            "exit lag). loitering: the loitering rule's radius/time/band applied to the "
            "truth positions; latency from when the truth reached the rule's time. "
            "lost_inside: true when the lost track's last associated target was inside "
            "the zone then (no recall: truth cannot say a track should have been lost). "
            "probe: the truth headed for the zone (its straight path over the "
            "predicted-incursion horizon reached it), came within the probe rule's "
            "max_distance and did not enter; the alert must open between the first "
            "heading-in step and the last one plus the horizon (+- tolerance)."
        ),
        "opened_by_kind": dict(scores.opened_by_kind),
    }
    for kind, ks in scores.by_kind.items():
        out[kind] = ks.summary()
        infos = {"incursion": scored, "predicted_incursion": scored}.get(kind)
        out[kind]["missed"] = [
            {
                "target": e.target,
                "zone": e.zone,
                "t_enter": e.t_enter,
                "cls": infos[e.episode].get("cls") if infos else None,
                "side": infos[e.episode].get("side") if infos else None,
            }
            for e in ks.episodes
            if e.alert_id is None
        ]
        out[kind]["false"] = [
            {"alert_id": a.alert_id, "t": a.t, "track_id": a.track_id, "target": a.target}
            for a in ks.alerts
            if a.outcome == "false"
        ]
    # Split the incursion latency at the first step the target's track is inside.
    geom = dict(zones)
    track_of: dict[tuple[int, float], int] = {}
    for r in records:
        if r.target >= 0:
            track_of[(r.target, r.t)] = r.track_id
    pictures = [pic for pic, _ in steps]
    parts = []
    inc = scores.by_kind.get("incursion")
    for e in inc.episodes if inc else ():
        if e.latency is None or e.zone not in geom:
            continue
        t_in = None
        for pic in pictures:
            if pic.t < e.t_enter - 2.0:
                continue
            if pic.t > e.t_enter + e.latency:
                break
            tid = track_of.get((e.target, pic.t))
            if tid is None:
                continue
            row = np.flatnonzero(pic.ids == tid)
            if row.size and shapely.contains_xy(geom[e.zone], pic.x[row[0], 0], pic.x[row[0], 1]):
                t_in = pic.t
                break
        if t_in is not None:
            parts.append((t_in - e.t_enter, e.t_enter + e.latency - t_in))
    if parts:
        a = np.array(parts)
        out["incursion_latency_split"] = {
            "episodes": len(parts),
            "tracking_median": float(np.median(a[:, 0])),
            "rule_median": float(np.median(a[:, 1])),
            "note": "tracking: truth entry -> first step its track's point estimate is "
            "inside; rule: that step -> alert open (p_open held for dwell_open, "
            "evaluated every alert_interval)",
        }
    return out


def format_summary(summary: dict[str, Any], limit: int = 5) -> str:
    """The terminal table; at most ``limit`` missed and false alerts listed per kind."""

    def num(v: Any, fmt: str = ".3f") -> str:
        if v is None:  # keep the column width of the format
            width = fmt.split(".")[0]
            return "n/a".rjust(int(width) if width else 0)
        return format(v, fmt)

    g = summary["gospa"]
    m = g["mean"]
    lines = [f"WARNING: {w}" for w in summary.get("warnings") or ()]
    lines += [
        f"tracker {summary['tracker']}, scenario {summary.get('scenario')}, "
        f"{summary['steps']} steps over t = {summary['t_span'][0]:g}..{summary['t_span'][1]:g} s",
        "",
        f"GOSPA (c={g['c']:g} m, p={g['p']:g}, alpha={g['alpha']:g})   mean over steps",
        f"  distance       {num(m['distance'], '10.2f')} m",
        f"  localisation   {num(m['localisation'], '10.1f')} m^p",
        f"  missed         {num(m['missed'], '10.1f')} m^p   "
        f"({num(m['n_missed'], '.1f')} truths/step)",
        f"  false          {num(m['false'], '10.1f')} m^p   "
        f"({num(m['n_false'], '.1f')} tracks/step)",
        "",
        "tracks",
        f"  truths {summary['tracks']['targets']}, tracked {summary['tracks']['targets_tracked']}, "
        f"never tracked {summary['tracks']['never_tracked']}",
        f"  fragmentation  {num(summary['tracks']['fragmentation'], '.3f')} "
        "track ids per tracked truth",
        f"  id switches    {summary['tracks']['id_switches']}",
    ]
    alerts = summary.get("alerts") or {}
    if "rule" in alerts:
        lines += [
            "",
            f"{'alerts':22}{'truth':>7}{'opened':>8}{'true':>6}{'dup':>5}{'false':>7}"
            f"{'recall':>8}{'prec':>7}{'strict':>7}{'lat p50':>9}{'p90':>8}{'max':>8}",
        ]
        for kind in ALERT_KINDS:
            s = alerts.get(kind)
            if not s:
                continue
            lines.append(
                f"  {kind:20}{s['n_truth']:7d}{s['n_opened']:8d}{s['n_true']:6d}"
                f"{s['n_duplicate']:5d}{s['n_false']:7d}{num(s['recall'], '8.3f')}"
                f"{num(s['precision'], '7.3f')}{num(s['precision_strict'], '7.3f')}"
                f"{num(s['latency_median'], '9.1f')}"
                f"{num(s['latency_p90'], '8.1f')}{num(s['latency_max'], '8.1f')}"
            )
            for miss in s["missed"][:limit]:
                what = (
                    f"({miss['cls']}, from {miss['side']}) entering"
                    if miss.get("cls")
                    else {"exit": "leaving", "loitering": "loitering from",
                          "probe": "closest to the zone"}.get(kind, "at")
                )
                lines.append(
                    f"      missed: target {miss['target']} {what} at t={miss['t_enter']:.1f}"
                )
            if s.get("false_then_probe"):
                lines.append(
                    f"      of the false, {s['false_then_probe']} turned back and were "
                    "reported as probes"
                )
            for fa in s["false"][:limit]:
                lines.append(
                    f"      false:  {fa['alert_id']} at t={fa['t']:.1f} "
                    f"(track {fa['track_id']} -> truth {fa['target']})"
                )
            more = max(len(s["missed"]) - limit, 0) + max(len(s["false"]) - limit, 0)
            if more:
                lines.append(f"      ... {more} more missed/false: see --json")
        split = alerts.get("incursion_latency_split")
        if split:
            lines.append(
                f"  incursion latency split (median over {split['episodes']}): tracking "
                f"{split['tracking_median']:.1f} s + rule {split['rule_median']:.1f} s"
            )
        lines += ["", "matching rule: " + alerts["rule"]]
    elif alerts:
        lines += ["", alerts.get("note", "")]
    return "\n".join(lines)
