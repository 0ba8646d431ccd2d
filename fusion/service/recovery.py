"""Checkpoints of the service's state, and how they are reconciled with the alert log.

File format
-----------
One ``.npz`` file (numpy's zip of ``.npy`` members, loaded with
``allow_pickle=False``; zip CRCs guard every member). Every ndarray of the state
becomes a member ``a<k>``; the rest of the (nested) state is one msgpack map in the
member ``skeleton`` where each array is replaced by ``{"__nd__": k}``. No pickle,
on disk or anywhere else.

Writing is atomic: a temporary file in the same directory, ``fsync``, ``os.replace``
over the old checkpoint, ``fsync`` of the directory. A crash at any moment leaves
either the old or the new checkpoint, never a mixture.

Reconciliation rule (after a crash)
-----------------------------------
The alert log is the record of what was *published* (an event is appended before it
is sent); a checkpoint is the full state at one instant and names how many log
records existed then (``log_records``). So on restart:

1. The log is verified; damaged regions are copied to its quarantine file (never cut)
   and only records the hash chain lets us trust are used, in sequence order.
2. The checkpoint's engine already reflects log records ``[0, log_records)``.
3. Records ``[log_records, end)`` were published after the checkpoint; they are
   applied to the engine's open set in order: ``open`` adds the episode (and counts
   it, so its id is never issued again), ``update`` refreshes it, ``close`` removes
   it. Hence an alert raised after the checkpoint is open after the restart (not
   lost), is not raised a second time by the engine (it sees it as open), and an
   alert closed after the checkpoint stays closed.
4. An open alert whose track the checkpoint does not hold (the track was born after
   the checkpoint) gets that track back: a confirmed track with the alert's id,
   position and velocity at the alert's time and a wide covariance, so new
   detections of the same target update it and the alert continues. The track-id
   counter moves past every id in the log, so no id is ever reused.
5. Engine, tracker and pipeline clocks move to the newest time in the log, so the
   engine never steps backwards.

No checkpoint (or an unreadable one) is a checkpoint of the empty state taken at
the beginning of the log: every record is "later", which restores every open alert.
If the log is *shorter* than ``log_records`` (it lost records), the checkpoint's
open set is kept as it is and the shortfall is reported.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

from fusion.alerting.episodes import Episode
from fusion.messages import CLASSES
from fusion.service.alertlog import read_alert_entries
from fusion.tracking.track_table import CONFIRMED

if TYPE_CHECKING:
    from fusion.service.pipeline import Pipeline

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Covariance given to a track rebuilt from an alert: its true covariance is not in the
# alert, so be generous (position std 100 m, velocity std 10 m/s) and let the filter
# tighten it with the next detections.
_RESTORED_P = np.diag([100.0**2, 100.0**2, 10.0**2, 10.0**2])


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit this service."""


# -- file format ------------------------------------------------------------------------


def _split(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("object arrays cannot be checkpointed")
        arrays.append(obj)
        return {"__nd__": len(arrays) - 1}
    if isinstance(obj, Mapping):
        return {k: _split(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_split(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _join(obj: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__nd__"}:
            return arrays[f"a{obj['__nd__']}"]
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> int:
    """Write ``state`` atomically to ``path``; returns the bytes written.

    Parameters
    ----------
    path : str or Path
    state : dict
        Nested dicts/lists of msgpack-able scalars, str, bytes and numeric ndarrays.
    """
    path = Path(path)
    arrays: list[np.ndarray] = []
    skeleton = _split({"format": FORMAT_VERSION, **state}, arrays)
    buf = io.BytesIO()
    members = {f"a{k}": a for k, a in enumerate(arrays)}
    members["skeleton"] = np.frombuffer(msgpack.packb(skeleton, use_bin_type=True), np.uint8)
    np.savez(buf, **members)  # type: ignore[arg-type]
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # and the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    return len(data)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    CheckpointError
        If the file is damaged, not a checkpoint, or of another format version.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        skeleton = msgpack.unpackb(arrays.pop("skeleton").tobytes(), raw=False,
                                   strict_map_key=False)
    except (OSError, ValueError, KeyError, EOFError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile and friends: damaged file
        raise CheckpointError(f"checkpoint {path} is damaged: {exc}") from None
    if not isinstance(skeleton, dict) or skeleton.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has an unknown format")
    state = _join(skeleton, arrays)
    state.pop("format")
    return state


# -- reconciliation ---------------------------------------------------------------------


@dataclass
class Reconciliation:
    """What reconciling a checkpoint with the log did (for logs and ``status``)."""

    later_events: int = 0
    reopened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    tracks_restored: list[int] = field(default_factory=list)
    log_short_by: int = 0
    newest_t: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "later_events": self.later_events,
            "reopened": list(self.reopened),
            "closed": list(self.closed),
            "tracks_restored": list(self.tracks_restored),
            "log_short_by": self.log_short_by,
        }


def _set_row(tracker_state: dict[str, Any], r: int, ep: Mapping[str, Any]) -> None:
    f = ep["fields"]
    tracker_state["x"][r] = [f["east"] or 0.0, f["north"] or 0.0,
                             f["v_east"] or 0.0, f["v_north"] or 0.0]
    tracker_state["P"][r] = _RESTORED_P
    t = float(ep["last_emit"])
    for name in ("t", "t_hit"):
        if name in tracker_state:
            tracker_state[name][r] = t
    if "misses_in_row" in tracker_state:
        tracker_state["misses_in_row"][r] = 0


def _restore_tracks(tracker_state: dict[str, Any], episodes: Sequence[Mapping[str, Any]],
                    classes: Sequence[str], status_confirmed: int) -> list[int]:
    """Bring the tracks of open alerts up to the log (rows stay sorted by id).

    A missing track is appended as a confirmed track; a present one whose state is
    older than its alert's latest logged event takes that event's position and
    velocity (otherwise a restart after a long gap would coast it into deletion).
    Returns the ids of the appended tracks.
    """
    ids = np.asarray(tracker_state["id"])
    row_of = {int(tid): r for r, tid in enumerate(ids.tolist())}
    rows: dict[int, Mapping[str, Any]] = {}
    for ep in episodes:  # the latest event of a track wins
        tid = int(ep["track_id"])
        if tid not in rows or ep["last_emit"] >= rows[tid]["last_emit"]:
            rows[tid] = ep
    for tid, ep in rows.items():
        r = row_of.get(tid)
        if r is not None and float(ep["last_emit"]) > float(tracker_state["t"][r]):
            _set_row(tracker_state, r, ep)
    new = sorted(tid for tid in rows if tid not in row_of)
    if not new:
        return []
    k = len(new)
    for name, col in list(tracker_state.items()):
        if isinstance(col, np.ndarray) and col.ndim >= 1 and name != "latest_time":
            extra = np.zeros((k, *col.shape[1:]), col.dtype)
            tracker_state[name] = np.concatenate([col, extra])
    n0 = len(tracker_state["id"]) - k
    for j, tid in enumerate(new):
        ep, r = rows[tid], n0 + j
        f = ep["fields"]
        tracker_state["id"][r] = tid
        _set_row(tracker_state, r, ep)
        if "t_born" in tracker_state:
            tracker_state["t_born"][r] = float(ep["opened_at"])
        if "status" in tracker_state:
            tracker_state["status"][r] = status_confirmed
        if "history" in tracker_state:
            tracker_state["history"][r] = 1
        if "scans" in tracker_state:
            tracker_state["scans"][r] = 1
        if "class_evidence" in tracker_state and f.get("cls") in classes:
            tracker_state["class_evidence"][r, list(classes).index(f["cls"])] = 1.0
    return new


def _count_episode(counts: dict[tuple[int, str, str], int], ev: Mapping[str, Any]) -> None:
    """Episode n of (track, zone, kind) has id "zone:kind:track:n": count it so that the
    engine's next episode of the same triple gets n + 1, never n again."""
    try:
        n = int(str(ev["alert_id"]).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        n = 0
    key = (int(ev["track_id"]), ev["zone"], ev["kind"])
    counts[key] = max(counts.get(key, 0), n + 1)


def _apply_later_events(engine_state: dict[str, Any], later: Sequence[Mapping[str, Any]],
                        hold_of: Any, report: Reconciliation) -> None:
    """Replay log records written after the checkpoint onto its open alerts and counts."""
    open_eps = {s["alert_id"]: Episode.from_state(s) for s in engine_state["open"]}
    counts = {(int(t), z, k): int(n) for t, z, k, n in engine_state["counts"]}
    for ev in later:
        aid = ev["alert_id"]
        if ev["event"] == "close":
            if open_eps.pop(aid, None) is not None:
                report.closed.append(aid)
            continue
        ep = open_eps.get(aid)
        if ep is None:
            open_eps[aid] = Episode.from_event(dict(ev), hold_of(ev["zone"], ev["kind"]))
            report.reopened.append(aid)
        else:
            ep.apply_event(dict(ev))
        _count_episode(counts, ev)
    engine_state["open"] = [ep.to_state() for ep in open_eps.values()]
    engine_state["counts"] = [[t, z, k, n] for (t, z, k), n in counts.items()]
    report.reopened = [a for a in report.reopened if a in open_eps]
    newest = max(float(e["t"]) for e in later)
    report.newest_t = newest
    if engine_state["t"] is None or engine_state["t"] < newest:
        engine_state["t"] = newest


def reconcile(
    engine_state: dict[str, Any] | None,
    tracker_state: dict[str, Any],
    events: Sequence[Mapping[str, Any]],
    log_records: int,
    hold_of: Any,
    classes: Sequence[str],
    status_confirmed: int = 1,
) -> tuple[dict[str, Any] | None, dict[str, Any], Reconciliation]:
    """Apply the log's records after the checkpoint to its engine and tracker state.

    Parameters
    ----------
    engine_state : dict or None
        ``AlertEngine.state_dict()`` of the checkpoint (a fresh engine's if none).
    tracker_state : dict
        ``Tracker.state_dict()`` of the checkpoint (a fresh tracker's if none).
    events : sequence of dict
        Every verified record of the alert log, in order.
    log_records : int
        Records the log held when the checkpoint was taken (0 without one).
    hold_of : callable
        ``hold_of(zone, kind)`` -> hold seconds for kinds that close on a hold, else None.
    classes : sequence of str
        Class names, index = class code (``fusion.messages.CLASSES``).
    status_confirmed : int
        Status code of a confirmed track.

    Returns
    -------
    engine_state, tracker_state, Reconciliation
        New states (the inputs are not modified) and what was done.
    """
    report = Reconciliation()
    engine_state = copy.deepcopy(engine_state)
    tracker_state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                     for k, v in tracker_state.items()}
    if len(events) < log_records:
        report.log_short_by = log_records - len(events)
    later = list(events[log_records:])
    report.later_events = len(later)
    max_tid = max((int(e["track_id"]) for e in events if "track_id" in e), default=0)
    if engine_state is not None and later:
        _apply_later_events(engine_state, later, hold_of, report)
    if engine_state is not None:
        report.tracks_restored = _restore_tracks(
            tracker_state, engine_state["open"], classes, status_confirmed
        )
        if report.newest_t is not None:
            tracker_state["latest_time"] = max(float(tracker_state["latest_time"]),
                                               report.newest_t)
    tracker_state["next_id"] = max(int(tracker_state["next_id"]), max_tid + 1)
    return engine_state, tracker_state, report


__all__ = [
    "CheckpointError",
    "Reconciliation",
    "load_checkpoint",
    "reconcile",
    "save_checkpoint",
]

# --- restoring a pipeline -------------------------------------------------------------


def remove_stale_temporaries(checkpoint: str | Path) -> list[str]:
    """Delete half-written checkpoint temporaries a kill left beside ``checkpoint``.

    Only files named like :func:`save_checkpoint`'s temporaries of this checkpoint
    (``.<name>.*.tmp``) are touched: they were never a checkpoint, so nothing that was
    one is lost. Returns their names.
    """
    path = Path(checkpoint)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp.name)
    if removed:
        log.warning("removed %d stale checkpoint temporaries: %s", len(removed), removed)
    return removed


def _trusted_log(pipeline: Pipeline, log_path: str | Path,
                 result: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(seq, event) of the log's trusted records; what was wrong goes into ``result``."""
    entries: list[tuple[int, dict[str, Any]]] = []
    if log_path and Path(log_path).exists():
        # Only records the hash chain lets us trust; damage is quarantined, never cut.
        entries, report = read_alert_entries(log_path)
        if not report.ok:
            log.error("alert log %s: %s (the open set is rebuilt from trusted records only; "
                      "alerts affected: %s)", log_path, report.detail,
                      ", ".join(report.affected_alerts) or "none")
        result["log"] = report.detail
        result["log_trust"] = report.as_status()
        recovery = getattr(pipeline.alert_log, "recovery", None)
        if recovery is not None and recovery.quarantined:
            result["log_trust"]["quarantined"] = [
                {k: v for k, v in q.items() if k != "new"} for q in recovery.quarantined]
            result["log_damaged"] = recovery.detail
    return entries


def restore_pipeline(pipeline: Pipeline, checkpoint: str | Path = "",
                     log_path: str | Path = "") -> dict[str, Any]:
    """Resume ``pipeline`` from a checkpoint and the alert log (see :mod:`fusion.service.recovery`).

    Call it after the pipeline's :class:`AlertLog` is open (opening it quarantines
    damaged regions and reports them). Returns what was restored; also kept in
    ``pipeline.restored`` and so in ``status``.
    """
    result: dict[str, Any] = {}
    state: dict[str, Any] | None = None
    if checkpoint:
        stale = remove_stale_temporaries(checkpoint)
        if stale:
            result["stale_temporaries_removed"] = stale
    if checkpoint and Path(checkpoint).exists():
        try:
            state = load_checkpoint(checkpoint)
            result["checkpoint"] = str(checkpoint)
        except CheckpointError as exc:
            log.error("%s; starting from the alert log alone", exc)
            result["checkpoint_error"] = str(exc)
    entries = _trusted_log(pipeline, log_path, result)
    events = [ev for _, ev in entries]
    if state is None and not events:
        pipeline.restored = result
        return result
    if state is None:
        state = pipeline.state_dict()  # the empty state, as of the log's beginning
        state["log_records"] = 0
    # The checkpoint counted records by sequence number: split the trusted events there,
    # so records lost before it do not shift which events count as later.
    cut = int(state.get("log_records", 0))
    state["log_records"] = sum(1 for seq, _ in entries if seq < cut)
    if entries and entries[-1][0] + 1 < cut:
        result["log_short_by"] = cut - entries[-1][0] - 1
    engine = pipeline.engine

    def hold_of(zone: str, kind: str) -> float | None:
        try:
            hold = getattr(engine.rules.for_zone(zone), kind).hold
        except AttributeError:
            return None
        return float(hold)

    engine_state, tracker_state, rec = reconcile(
        state.get("engine"), state["tracker"], events, int(state.get("log_records", 0)),
        hold_of, CLASSES, int(CONFIRMED),
    )
    state["engine"], state["tracker"] = engine_state, tracker_state
    for topic_ev in events[int(state.get("log_records", 0)):]:
        state["alert_seq"][f"alert.{topic_ev['zone']}.{topic_ev['kind']}"] = (
            state["alert_seq"].get(f"alert.{topic_ev['zone']}.{topic_ev['kind']}", 0) + 1
        )
        key = f"{topic_ev['kind']}.{topic_ev['event']}"
        state["alerts_by_kind"][key] = state["alerts_by_kind"].get(key, 0) + 1
    if rec.newest_t is not None:
        for name in ("processed_until", "newest_accepted"):
            if state[name] is None or state[name] < rec.newest_t:
                state[name] = rec.newest_t
    pipeline.load_state_dict(state)
    result.update(rec.as_dict())
    result["open_alerts"] = len(engine.open_alerts())
    if rec.log_short_by:
        log.error("alert log holds %d record(s) fewer than the checkpoint expects",
                  rec.log_short_by)
    log.info(
        "restored: %d open alert(s), %d log record(s) after the checkpoint "
        "(%d reopened, %d closed), %d track(s) rebuilt from alerts",
        result["open_alerts"], rec.later_events, len(rec.reopened), len(rec.closed),
        len(rec.tracks_restored),
    )
    pipeline.restored = result
    return result
