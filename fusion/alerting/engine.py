"""The alert engine: zone rules applied to the confirmed-track picture, one step at a time.

After each detection batch the tracker hands :meth:`AlertEngine.step` a snapshot of its
confirmed tracks (structure of arrays); a timer calls it too, without a snapshot, so that
dwell times and holds run out even when no data arrives. The per-track maths -- P(inside)
from the covariance, time to breach, distance, side, dwell timers, loitering anchors --
is numpy over all tracks, once per zone; Python only touches the few tracks whose alert
opens, updates or closes in this step.

Alert kinds and their lifecycle (thresholds are :mod:`fusion.alerting.rules` data):

``incursion``
    Opens when P(inside) >= ``p_open`` has held for ``dwell_open`` seconds; closes when
    P(inside) <= ``p_close`` has held for ``dwell_close`` seconds. The gap between the
    thresholds and the dwell times keep a track sliding along the edge from flapping.
``exit``
    When an incursion closes because the track left, an exit alert opens (and closes
    after ``hold`` seconds, at once by default). It carries the incursion's id in
    ``related_alert_id``, its side (where the track came from) and evidence.
``predicted_incursion``
    A track outside, faster than ``min_speed``, whose straight-line path enters within
    ``horizon`` seconds, for ``dwell_open``; closes when the time to breach exceeds
    ``horizon_close`` for ``dwell_close``, or at once when the incursion opens.
``loitering``
    A track within ``band`` metres of the zone (or inside) that has stayed within
    ``radius`` of the point where that dwell began for ``time`` seconds; closes when it
    moves ``radius_close`` from that point or leaves the band, for ``dwell_close``.
``lost_inside``
    A track that is deleted (``deleted_ids``), or that vanishes from the snapshot, while
    its incursion is open: the incursion closes (reason ``track_deleted`` or
    ``track_gone``) and this alert opens at the last known position, closing after
    ``hold`` seconds. Any other open alert of a vanished track closes with that reason.

Every alert is one episode with a stable id ``"<zone>:<kind>:<track id>:<n>"`` (``n``
counts that track's episodes of that kind in that zone from 0), an ``open`` event, any
``update`` events (every ``update_interval`` seconds, or when the severity changes) and
one ``close`` event. The ids depend only on the input sequence, so replays give the
same ids.

Event schema (every key always present; plain Python values, msgpack- and JSON-ready)::

    alert_id          str    "<zone>:<kind>:<track id>:<n>"
    kind              str    one of fusion.alerting.rules.KINDS
    event             str    "open" | "update" | "close"
    severity          str    one of fusion.alerting.rules.SEVERITIES, by target class
    zone              str
    track_id          int
    t                 float  time of this event (the step time)
    position          {"east", "north": float metres, "lon", "lat": float degrees or None}
    velocity          {"east", "north": float m/s}
    speed             float  m/s
    p_inside          float  probability the track is inside the zone
    time_to_breach    float seconds, or None (no entry within the rule's horizon_close)
    side              str or None  side the track came from (last side seen outside;
                             the half it was in if it was never seen outside)
    side_now          str or None  side it is on at this event
    cls               str    class name
    conf              float  class confidence
    evidence          list of str, sorted: sensors whose detections updated the track
                             from when the open condition began to this event
    opened_at         float
    closed_at         float or None (the close time, on close events)
    reason            str or None  why it closed: "left_zone", "cleared", "incursion",
                             "entered", "loiter_ended", "hold_elapsed",
                             "track_deleted", "track_gone", "rule_disabled"
    related_alert_id  str or None  the incursion an exit / lost_inside / closed
                             predicted_incursion belongs to

Track ids are assumed never to be reused by the tracker.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from fusion.alerting.rules import RuleSet, load_rules
from fusion.alerting.probability import FAR_SIGMAS
from fusion.alerting.zones import Zone, ZoneSet
from fusion.geo import LocalFrame
from fusion.messages import CLASSES

__all__ = ["AlertEngine"]

_STATE_VERSION = 1
# Slack on time comparisons: step times like 0.1 * k do not add up exactly.
_EPS_T = 1e-9
# Distinct sensors remembered per track (with the time each last updated it), so that
# an alert opening after its dwell names the sensors that saw the whole dwell.
_RING = 16
# Per-zone per-track columns carried from step to step (float; NaN = not running).
_ZONE_COLS = (
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
# Kinds whose alerts follow a condition on the live track; the others close on a hold.
_CONDITION_KINDS = ("incursion", "predicted_incursion", "loitering")


def _align(prev_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``ids`` sits in sorted ``prev_ids``: (index (N,), found (N,) bool)."""
    if prev_ids.size == 0:
        return np.zeros(ids.shape, np.intp), np.zeros(ids.shape, bool)
    idx = np.minimum(np.searchsorted(prev_ids, ids), prev_ids.size - 1)
    return idx, prev_ids[idx] == ids


def _since(cond: np.ndarray, prev: np.ndarray, t: float) -> np.ndarray:
    """Time each condition started holding (NaN where it does not hold now)."""
    return np.where(cond, np.where(np.isnan(prev), t, prev), np.nan)


def _held(since: np.ndarray, t: float, dwell: float) -> np.ndarray:
    """Whether a condition has held for ``dwell`` seconds (NaN since -> False)."""
    with np.errstate(invalid="ignore"):
        return (t - since) >= dwell - _EPS_T


class AlertEngine:
    """Turn confirmed-track snapshots into alert events, zone by zone.

    Parameters
    ----------
    zones : ZoneSet or iterable of Zone
        The zones, in the local frame.
    rules : RuleSet, optional
        Alert rules; default the shipped ``fusion/data/rules.toml``.
    frame : LocalFrame, optional
        Used to add lon/lat to alert positions; without it they are ``None``.

    Raises
    ------
    ValueError
        If the rules name a zone that is not configured (a likely typo).
    """

    def __init__(
        self,
        zones: ZoneSet | Iterable[Zone],
        rules: RuleSet | None = None,
        frame: LocalFrame | None = None,
    ):
        self.zones = zones if isinstance(zones, ZoneSet) else ZoneSet(zones)
        self.rules = load_rules() if rules is None else rules
        unknown = sorted(set(self.rules.zones) - set(self.zones.names))
        if unknown:
            raise ValueError(
                f"rules name zones that are not configured: {unknown} "
                f"(configured: {self.zones.names})"
            )
        self.frame = frame
        self._reset()

    def _reset(self) -> None:
        self._t: float | None = None
        # Last snapshot (ids, x, P_pos, cls, conf), for timer steps without one.
        self._snap = (
            np.zeros(0, np.int64),
            np.zeros((0, 4)),
            np.zeros((0, 2, 2)),
            np.zeros(0, np.uint8),
            np.zeros(0),
        )
        self._sensors: list[str] = []
        self._sensor_code: dict[str, int] = {}
        # Per-track evidence ring, rows sorted by track id.
        self._trk_ids = np.zeros(0, np.int64)
        self._ev_code = np.full((0, _RING), -1, np.int32)
        self._ev_t = np.full((0, _RING), -np.inf)
        # Per-zone per-track columns, rows sorted by track id.
        self._zst: dict[str, dict[str, np.ndarray]] = {
            z.name: self._empty_zone_state() for z in self.zones
        }
        # Open alerts by id (insertion order = opening order), and an index by
        # (zone, kind) -> {track id: alert id}.
        self._open: dict[str, dict[str, Any]] = {}
        self._by_zk: dict[tuple[str, str], dict[int, str]] = {}
        # Episodes so far per track: {track id: {(zone, kind): n}}; dropped with the track.
        self._counts: dict[int, dict[tuple[str, str], int]] = {}

    @staticmethod
    def _empty_zone_state() -> dict[str, np.ndarray]:
        st = {c: np.zeros(0) for c in _ZONE_COLS}
        st["ids"] = np.zeros(0, np.int64)
        return st

    # ------------------------------------------------------------------ public API

    def step(
        self,
        t: float,
        ids: np.ndarray | None = None,
        x: np.ndarray | None = None,
        P: np.ndarray | None = None,
        cls: np.ndarray | None = None,
        conf: np.ndarray | None = None,
        updated_ids: np.ndarray | None = None,
        sensor_id: str | None = None,
        deleted_ids: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """Advance to time ``t`` and return the alert events this step raised.

        Parameters
        ----------
        t : float
            Time of the snapshot (measurement time, seconds); never decreasing.
        ids : ndarray, shape (N,), int64, optional
            Confirmed track ids, unique. ``None`` (a timer step) re-uses the last
            snapshot as it was; the engine does not predict tracks itself.
        x : ndarray, shape (N, 4), float64
            States: east, north (m), v_east, v_north (m/s).
        P : ndarray, shape (N, 4, 4) or (N, 2, 2), float64
            State (or position) covariances; only the position block is used.
        cls : ndarray, shape (N,), uint8
            Class index into ``fusion.messages.CLASSES``.
        conf : ndarray, shape (N,), float64
            Class confidence.
        updated_ids : ndarray, shape (U,), int64, optional
            Tracks a detection from ``sensor_id`` updated in this batch (evidence).
        sensor_id : str, optional
            The sensor of this batch.
        deleted_ids : ndarray, shape (D,), int64, optional
            Tracks the tracker deleted in this batch; dropped from the snapshot.

        Returns
        -------
        list of dict
            Alert events in a deterministic order (see the module docstring).

        Raises
        ------
        ValueError
            On a time that goes backwards or is not finite, or malformed arrays.
        """
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"step time {t!r} is not finite")
        if self._t is not None and t < self._t:
            raise ValueError(f"step time {t} is before the previous step's {self._t}")
        if ids is None:
            if any(a is not None for a in (x, P, cls, conf)):
                raise ValueError("x, P, cls and conf come with ids; pass ids too")
            snap = self._snap
        else:
            snap = self._check_snapshot(ids, x, P, cls, conf)
        deleted = np.unique(
            np.asarray([] if deleted_ids is None else deleted_ids, np.int64).ravel()
        )
        if deleted.size and snap[0].size:
            keep = ~np.isin(snap[0], deleted)
            snap = tuple(a[keep] for a in snap)  # type: ignore[assignment]
        self._snap = snap
        ids_, x_, Pp, cls_, conf_ = snap
        self._t = t
        events: list[dict[str, Any]] = []

        # Tracks that went away: close their alerts; an open incursion becomes lost_inside.
        vanished = np.setdiff1d(self._trk_ids, ids_, assume_unique=True)
        gone = np.union1d(deleted, vanished)
        if gone.size:
            self._handle_gone(t, gone, set(deleted.tolist()), events)

        self._update_evidence(t, ids_, updated_ids, sensor_id)
        order = np.argsort(ids_, kind="stable")
        for zone in self.zones:
            self._step_zone(t, zone, ids_, x_, Pp, cls_, conf_, order, events)
        self._expire_holds(t, events)
        self._fill_lonlat(events)
        return events

    def open_alerts(self) -> list[dict[str, Any]]:
        """The latest event of every open alert, in opening order (for late subscribers)."""
        return [copy.deepcopy(ep["last_event"]) for ep in self._open.values()]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is (a deep copy)."""
        return copy.deepcopy(
            {
                "version": _STATE_VERSION,
                "t": self._t,
                "snapshot": dict(
                    zip(("ids", "x", "P_pos", "cls", "conf"), self._snap, strict=True)
                ),
                "sensors": self._sensors,
                "tracks": {"ids": self._trk_ids, "ev_code": self._ev_code, "ev_t": self._ev_t},
                "zones": self._zst,
                "open": [{**ep, "evidence": sorted(ep["evidence"])} for ep in self._open.values()],
                "counts": [
                    [tid, zone, kind, n]
                    for tid, per in self._counts.items()
                    for (zone, kind), n in per.items()
                ],
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the zones must be the same as when it was taken.

        Raises
        ------
        ValueError
            On an unknown state version or a zone set that does not match.
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"alert engine state version {state.get('version')!r} is not {_STATE_VERSION}"
            )
        if set(state["zones"]) != set(self.zones.names):
            raise ValueError(
                f"state is for zones {sorted(state['zones'])}, "
                f"engine has {sorted(self.zones.names)}"
            )
        state = copy.deepcopy(state)
        self._reset()
        self._t = state["t"]
        s = state["snapshot"]
        self._snap = (s["ids"], s["x"], s["P_pos"], s["cls"], s["conf"])
        self._sensors = list(state["sensors"])
        self._sensor_code = {name: i for i, name in enumerate(self._sensors)}
        self._trk_ids = state["tracks"]["ids"]
        self._ev_code = state["tracks"]["ev_code"]
        self._ev_t = state["tracks"]["ev_t"]
        self._zst = state["zones"]
        for ep in state["open"]:
            ep["evidence"] = set(ep["evidence"])
            self._open[ep["alert_id"]] = ep
            self._by_zk.setdefault((ep["zone"], ep["kind"]), {})[ep["track_id"]] = ep["alert_id"]
        for tid, zone, kind, n in state["counts"]:
            self._counts.setdefault(int(tid), {})[(zone, kind)] = int(n)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _check_snapshot(ids, x, P, cls, conf):
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
        n = ids.size
        if any(a is None for a in (x, P, cls, conf)):
            raise ValueError("a snapshot needs ids, x, P, cls and conf")
        x = np.asarray(x, dtype=float)
        P = np.asarray(P, dtype=float)
        cls = np.asarray(cls)
        conf = np.asarray(conf, dtype=float)
        if x.shape != (n, 4):
            raise ValueError(f"x must have shape ({n}, 4), got {x.shape}")
        if P.shape not in ((n, 4, 4), (n, 2, 2)):
            raise ValueError(f"P must have shape ({n}, 4, 4) or ({n}, 2, 2), got {P.shape}")
        if cls.shape != (n,) or conf.shape != (n,):
            raise ValueError(
                f"cls and conf must have shape ({n},), got {cls.shape} and {conf.shape}"
            )
        if n and ((cls < 0).any() or (cls >= len(CLASSES)).any()):
            raise ValueError(f"cls holds indices outside 0..{len(CLASSES) - 1}")
        if np.unique(ids).size != n:
            raise ValueError("track ids in a snapshot must be unique")
        Pp = P[:, :2, :2]
        if not (np.isfinite(x).all() and np.isfinite(Pp).all()):
            raise ValueError("x or P holds NaN or infinity")
        # Copies: the tracker's arrays are reused and compacted in place.
        return ids, x.copy(), Pp.copy(), cls.astype(np.uint8), conf.copy()

    def _update_evidence(self, t, ids, updated_ids, sensor_id) -> None:
        idx, found = _align(self._trk_ids, ids)
        code = np.full((ids.size, _RING), -1, np.int32)
        when = np.full((ids.size, _RING), -np.inf)
        code[found] = self._ev_code[idx[found]]
        when[found] = self._ev_t[idx[found]]
        order = np.argsort(ids, kind="stable")
        self._trk_ids, self._ev_code, self._ev_t = ids[order], code[order], when[order]
        self.record_evidence(t, updated_ids, sensor_id)

    def record_evidence(
        self, t: float, updated_ids: np.ndarray | None, sensor_id: str | None
    ) -> None:
        """Note that ``sensor_id`` updated these tracks at ``t``, without a full step.

        The service calls this for batches between rule evaluations, so evidence is
        complete even when rules are evaluated less often than batches arrive. Tracks
        the engine has not seen in a snapshot yet are skipped.

        Parameters
        ----------
        t : float
        updated_ids : ndarray, shape (U,), int64
        sensor_id : str
        """
        if sensor_id is None or updated_ids is None or self._trk_ids.size == 0:
            return
        updated = np.asarray(updated_ids, np.int64).ravel()
        if updated.size == 0:
            return
        if sensor_id not in self._sensor_code:
            self._sensor_code[sensor_id] = len(self._sensors)
            self._sensors.append(sensor_id)
        c = self._sensor_code[sensor_id]
        idx = np.minimum(np.searchsorted(self._trk_ids, updated), self._trk_ids.size - 1)
        rows = np.unique(idx[self._trk_ids[idx] == updated])
        if rows.size == 0:
            return
        match = self._ev_code[rows] == c
        # The sensor's own slot if it has one, else the stalest slot.
        slot = np.where(match.any(axis=1), match.argmax(axis=1), self._ev_t[rows].argmin(axis=1))
        self._ev_code[rows, slot] = c
        self._ev_t[rows, slot] = t
        upd_set = set(self._trk_ids[rows].tolist())
        # Open episodes indexed by (zone, kind) -> {track id: alert id}: intersect
        # rather than visiting every open alert for every batch.
        for (_, kind), by_track in self._by_zk.items():
            if kind in _CONDITION_KINDS:
                for tid in upd_set.intersection(by_track):
                    self._open[by_track[tid]]["evidence"].add(sensor_id)

    def _evidence_since(self, tid: int, since: float) -> set[str]:
        i = int(np.searchsorted(self._trk_ids, tid))
        if i >= self._trk_ids.size or self._trk_ids[i] != tid:
            return set()
        keep = (self._ev_code[i] >= 0) & (self._ev_t[i] >= since - _EPS_T)
        return {self._sensors[c] for c in self._ev_code[i][keep].tolist()}

    def _open_ids(self, zone: str, kind: str) -> np.ndarray:
        d = self._by_zk.get((zone, kind))
        return np.fromiter(d, np.int64, len(d)) if d else np.zeros(0, np.int64)

    def _new_episode(
        self, t, zone, kind, tid, severity, side, evidence, fields, related=None, hold=None
    ):
        per = self._counts.setdefault(tid, {})
        n = per.get((zone, kind), 0)
        per[(zone, kind)] = n + 1
        ep = {
            "alert_id": f"{zone}:{kind}:{tid}:{n}",
            "kind": kind,
            "zone": zone,
            "track_id": tid,
            "opened_at": t,
            "severity": severity,
            "side": side,
            "evidence": set(evidence),
            "fields": fields,
            "related": related,
            "close_at": None if hold is None else t + hold,
            "last_emit": t,
            "last_event": None,
        }
        self._open[ep["alert_id"]] = ep
        self._by_zk.setdefault((zone, kind), {})[tid] = ep["alert_id"]
        return ep

    def _emit(self, ep, event, t, events, reason=None) -> dict[str, Any]:
        f = ep["fields"]
        ev = {
            "alert_id": ep["alert_id"],
            "kind": ep["kind"],
            "event": event,
            "severity": ep["severity"],
            "zone": ep["zone"],
            "track_id": ep["track_id"],
            "t": t,
            "position": {"east": f["east"], "north": f["north"], "lon": None, "lat": None},
            "velocity": {"east": f["v_east"], "north": f["v_north"]},
            "speed": f["speed"],
            "p_inside": f["p_inside"],
            "time_to_breach": f["ttb"],
            "side": ep["side"],
            "side_now": f["side_now"],
            "cls": f["cls"],
            "conf": f["conf"],
            "evidence": sorted(ep["evidence"]),
            "opened_at": ep["opened_at"],
            "closed_at": t if event == "close" else None,
            "reason": reason,
            "related_alert_id": ep["related"],
        }
        ep["last_event"] = ev
        ep["last_emit"] = t
        events.append(ev)
        if event == "close":
            del self._open[ep["alert_id"]]
            by = self._by_zk.get((ep["zone"], ep["kind"]))
            if by is not None and by.get(ep["track_id"]) == ep["alert_id"]:
                del by[ep["track_id"]]
        return ev

    def _handle_gone(self, t, gone, deleted: set[int], events) -> None:
        gone_set = set(gone.tolist())
        for ep in list(self._open.values()):
            tid = ep["track_id"]
            if ep["kind"] not in _CONDITION_KINDS or tid not in gone_set:
                continue
            reason = "track_deleted" if tid in deleted else "track_gone"
            self._emit(ep, "close", t, events, reason)
            if ep["kind"] == "incursion":
                rule = self.rules.for_zone(ep["zone"]).lost_inside
                cls_name = ep["fields"]["cls"]
                if rule.enabled and cls_name in rule.classes:
                    lost = self._new_episode(
                        t,
                        ep["zone"],
                        "lost_inside",
                        tid,
                        rule.severity_for(cls_name),
                        ep["side"],
                        ep["evidence"],
                        ep["fields"],
                        related=ep["alert_id"],
                        hold=rule.hold,
                    )
                    self._emit(lost, "open", t, events)
        for tid in gone_set:
            self._counts.pop(tid, None)

    def _expire_holds(self, t, events) -> None:
        for ep in list(self._open.values()):
            if ep["close_at"] is not None and t >= ep["close_at"] - _EPS_T:
                self._emit(ep, "close", t, events, "hold_elapsed")

    def _fill_lonlat(self, events) -> None:
        if self.frame is None or not events:
            return
        en = np.array([[e["position"]["east"], e["position"]["north"]] for e in events])
        lonlat = self.frame.to_lonlat(en)
        for e, (lon, lat) in zip(events, lonlat.tolist(), strict=True):
            e["position"]["lon"] = lon
            e["position"]["lat"] = lat

    def _step_zone(self, t, zone: Zone, ids, x, Pp, cls, conf, order, events) -> None:
        zr = self.rules.for_zone(zone.name)
        inc, pred, loit = zr.incursion, zr.predicted_incursion, zr.loitering
        n = ids.size
        pos, vel = x[:, :2], x[:, 2:4]
        speed = np.hypot(vel[:, 0], vel[:, 1])

        # Only tracks near the zone need the shapely work; the rest are outside, far,
        # with no time to breach within the horizon.
        horizon = pred.horizon_close if pred.enabled else 0.0
        band = max(loit.band, 0.0) if loit.enabled else 0.0
        sig = np.sqrt(np.maximum(Pp[:, 0, 0] + Pp[:, 1, 1], 0.0))
        margin = np.maximum(np.maximum(FAR_SIGMAS * sig, speed * horizon), band) + 1.0
        sub = np.flatnonzero(zone.near(pos, margin))
        p_in = np.zeros(n)
        ttb = np.full(n, np.inf)
        dist = np.full(n, np.inf)
        side_now = np.zeros(n, np.int8)
        if sub.size:
            p_in[sub] = zone.probability_inside(pos[sub], Pp[sub])
            if pred.enabled:
                ttb[sub] = zone.time_to_breach(pos[sub], vel[sub], horizon)
            dist[sub] = zone.distance(pos[sub])
            side_now[sub] = zone.side(pos[sub])

        st = self._zst[zone.name]
        idx, found = _align(st["ids"], ids)
        col = {}
        for c in _ZONE_COLS:
            col[c] = np.full(n, 0.0 if c == "side_from" else np.nan)
            col[c][found] = st[c][idx[found]]
        # Where the track came from: the last side it was seen on while outside.
        seen_out = dist > 0
        col["side_from"] = np.where(seen_out & (side_now != 0), side_now, col["side_from"])

        def cls_ok(rule) -> np.ndarray:
            allowed = [CLASSES.index(c) for c in rule.classes]
            return np.isin(cls, allowed)

        def row_of(tid: int) -> int:
            return int(order[np.searchsorted(ids, tid, sorter=order)])

        def fields(i: int) -> dict[str, Any]:
            s = int(side_now[i])
            return {
                "east": float(pos[i, 0]),
                "north": float(pos[i, 1]),
                "v_east": float(vel[i, 0]),
                "v_north": float(vel[i, 1]),
                "speed": float(speed[i]),
                "p_inside": float(p_in[i]),
                "ttb": float(ttb[i]) if np.isfinite(ttb[i]) else None,
                "side_now": zone.side_name(s),
                "cls": CLASSES[int(cls[i])],
                "conf": float(conf[i]),
            }

        def fields_many(rows: np.ndarray) -> list[dict[str, Any]]:
            """:func:`fields` for many rows, converting whole columns at once."""
            ttb_rows = ttb[rows]
            columns = zip(
                pos[rows, 0].tolist(),
                pos[rows, 1].tolist(),
                vel[rows, 0].tolist(),
                vel[rows, 1].tolist(),
                speed[rows].tolist(),
                p_in[rows].tolist(),
                np.where(np.isfinite(ttb_rows), ttb_rows, np.nan).tolist(),
                side_now[rows].tolist(),
                cls[rows].tolist(),
                conf[rows].tolist(),
                strict=True,
            )
            return [
                {
                    "east": e,
                    "north": nn,
                    "v_east": ve,
                    "v_north": vn,
                    "speed": sp,
                    "p_inside": p,
                    "ttb": None if b != b else b,  # NaN marks "no breach"
                    "side_now": zone.side_name(s),
                    "cls": CLASSES[c],
                    "conf": cf,
                }
                for e, nn, ve, vn, sp, p, b, s, c, cf in columns
            ]

        def side_from(i: int) -> str | None:
            s = int(col["side_from"][i]) or int(side_now[i])
            return zone.side_name(s)

        def close_all(kind: str, reason: str) -> None:
            for tid in sorted(self._by_zk.get((zone.name, kind), {})):
                self._emit(
                    self._open[self._by_zk[(zone.name, kind)][tid]], "close", t, events, reason
                )

        touched: set[str] = set()  # alerts that already sent an event this step

        # --- incursion -------------------------------------------------------------
        inc_closed_ids: list[int] = []
        if inc.enabled:
            ok = cls_ok(inc)
            col["inc_on"] = _since((p_in >= inc.p_open) & ok, col["inc_on"], t)
            col["inc_off"] = _since((p_in <= inc.p_close) | ~ok, col["inc_off"], t)
            is_open = np.isin(ids, self._open_ids(zone.name, "incursion"))
            for i in np.flatnonzero(is_open & _held(col["inc_off"], t, inc.dwell_close)).tolist():
                tid = int(ids[i])
                ep = self._open[self._by_zk[(zone.name, "incursion")][tid]]
                ep["fields"] = fields(i)
                self._emit(ep, "close", t, events, "left_zone")
                inc_closed_ids.append(tid)
                ex = zr.exit
                if ex.enabled and ep["fields"]["cls"] in ex.classes:
                    e2 = self._new_episode(
                        t,
                        zone.name,
                        "exit",
                        tid,
                        ex.severity_for(ep["fields"]["cls"]),
                        ep["side"],
                        ep["evidence"],
                        ep["fields"],
                        related=ep["alert_id"],
                        hold=ex.hold,
                    )
                    self._emit(e2, "open", t, events)
                    touched.add(e2["alert_id"])
            for i in np.flatnonzero(~is_open & _held(col["inc_on"], t, inc.dwell_open)).tolist():
                tid = int(ids[i])
                f = fields(i)
                ep = self._new_episode(
                    t,
                    zone.name,
                    "incursion",
                    tid,
                    inc.severity_for(f["cls"]),
                    side_from(i),
                    self._evidence_since(tid, col["inc_on"][i]),
                    f,
                )
                self._emit(ep, "open", t, events)
                touched.add(ep["alert_id"])
        else:
            close_all("incursion", "rule_disabled")
        inc_open = np.isin(ids, self._open_ids(zone.name, "incursion"))

        # --- predicted incursion -----------------------------------------------------
        if pred.enabled:
            ok = cls_ok(pred)
            entered = inc_open if inc.enabled else (dist == 0)
            on = (dist > 0) & (ttb <= pred.horizon) & (speed >= pred.min_speed) & ok & ~inc_open
            col["pred_on"] = _since(on, col["pred_on"], t)
            col["pred_off"] = _since((ttb > pred.horizon_close) | ~ok, col["pred_off"], t)
            is_open = np.isin(ids, self._open_ids(zone.name, "predicted_incursion"))
            closing = is_open & (entered | _held(col["pred_off"], t, pred.dwell_close))
            for i in np.flatnonzero(closing).tolist():
                tid = int(ids[i])
                ep = self._open[self._by_zk[(zone.name, "predicted_incursion")][tid]]
                ep["fields"] = fields(i)
                if entered[i] and inc.enabled:
                    ep["related"] = self._by_zk[(zone.name, "incursion")][tid]
                    self._emit(ep, "close", t, events, "incursion")
                else:
                    self._emit(ep, "close", t, events, "entered" if entered[i] else "cleared")
            starting = ~is_open & ~entered & _held(col["pred_on"], t, pred.dwell_open)
            for i in np.flatnonzero(starting).tolist():
                tid = int(ids[i])
                f = fields(i)
                ep = self._new_episode(
                    t,
                    zone.name,
                    "predicted_incursion",
                    tid,
                    pred.severity_for(f["cls"]),
                    side_from(i),
                    self._evidence_since(tid, col["pred_on"][i]),
                    f,
                )
                self._emit(ep, "open", t, events)
                touched.add(ep["alert_id"])
        else:
            close_all("predicted_incursion", "rule_disabled")

        # --- loitering -------------------------------------------------------------
        if loit.enabled:
            ok = cls_ok(loit)
            in_band = (dist <= loit.band) & ok
            is_open = np.isin(ids, self._open_ids(zone.name, "loitering"))
            with np.errstate(invalid="ignore"):
                moved_by = np.hypot(pos[:, 0] - col["loit_e"], pos[:, 1] - col["loit_n"])
            # The anchor is where the current dwell began; it restarts whenever the
            # track strays beyond `radius`, and is frozen while the alert is open.
            restart = in_band & ~is_open & (np.isnan(col["loit_t"]) | ~(moved_by <= loit.radius))
            col["loit_e"] = np.where(restart, pos[:, 0], col["loit_e"])
            col["loit_n"] = np.where(restart, pos[:, 1], col["loit_n"])
            col["loit_t"] = np.where(restart, t, col["loit_t"])
            col["loit_t"] = np.where(in_band | is_open, col["loit_t"], np.nan)
            with np.errstate(invalid="ignore"):
                moved_by = np.hypot(pos[:, 0] - col["loit_e"], pos[:, 1] - col["loit_n"])
                away = (dist > loit.band) | (moved_by > loit.radius_close) | ~ok
            col["loit_off"] = _since(is_open & away, col["loit_off"], t)
            for i in np.flatnonzero(is_open & _held(col["loit_off"], t, loit.dwell_close)).tolist():
                tid = int(ids[i])
                ep = self._open[self._by_zk[(zone.name, "loitering")][tid]]
                ep["fields"] = fields(i)
                self._emit(ep, "close", t, events, "loiter_ended")
                col["loit_t"][i] = np.nan  # a new loiter needs a fresh dwell
                col["loit_off"][i] = np.nan
            for i in np.flatnonzero(
                ~is_open & in_band & _held(col["loit_t"], t, loit.time)
            ).tolist():
                tid = int(ids[i])
                f = fields(i)
                ep = self._new_episode(
                    t,
                    zone.name,
                    "loitering",
                    tid,
                    loit.severity_for(f["cls"]),
                    side_from(i),
                    self._evidence_since(tid, col["loit_t"][i]),
                    f,
                )
                self._emit(ep, "open", t, events)
                touched.add(ep["alert_id"])
        else:
            close_all("loitering", "rule_disabled")

        # --- updates of alerts still open ---------------------------------------------
        for kind in _CONDITION_KINDS:
            rule = zr[kind]
            by = self._by_zk.get((zone.name, kind), {})
            tids = [tid for tid in sorted(by) if self._open[by[tid]]["alert_id"] not in touched]
            if not tids:
                continue
            # One gather for all open alerts of this kind; a dict per alert only at the end.
            rows = order[np.searchsorted(ids, np.asarray(tids, np.int64), sorter=order)]
            for tid, f in zip(tids, fields_many(rows), strict=True):
                ep = self._open[by[tid]]
                ep["fields"] = f
                severity = rule.severity_for(ep["fields"]["cls"])
                due = (
                    rule.update_interval > 0
                    and t - ep["last_emit"] >= rule.update_interval - _EPS_T
                )
                if severity != ep["severity"] or due:
                    ep["severity"] = severity
                    self._emit(ep, "update", t, events)

        # Keep the per-track columns, sorted by id, for the next step.
        col["ids"] = ids
        self._zst[zone.name] = {c: a[order] for c, a in col.items()}
