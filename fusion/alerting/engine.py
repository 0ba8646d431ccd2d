"""The alert engine: zone rules applied to the confirmed-track picture, one step at a time.

After each detection batch the tracker hands :meth:`AlertEngine.step` a snapshot of its
confirmed tracks (structure of arrays); a timer calls it too, without a snapshot, so that
dwell times and holds run out even when no data arrives.

The step is incremental. For each zone a cheap bound over all tracks -- distance to the
zone's bounding box against ``FAR_SIGMAS`` position sigmas, the distance the track's
speed covers within the prediction horizon, and the loitering band -- picks the tracks
that could change an alert; only those, and the tracks whose timers are running or
whose alert is open, are evaluated (:class:`fusion.alerting.kinds.ZoneView`), with numpy
edge maths (:mod:`fusion.alerting.polygon`). Every other track is far from the zone, so
its timers are idle and stay so. Open alerts live column-wise in
:class:`fusion.alerting.episodes.OpenIndex` per zone and kind, so evidence, due updates
and severity changes are array operations; Python only touches the few alerts that emit
an event in this step.

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

from fusion.alerting import kinds
from fusion.alerting.episodes import Episode, OpenIndex, fields_from_row
from fusion.alerting.evidence import EvidenceRing
from fusion.alerting.kinds import EPS_T, STATE_COLUMNS, ZoneView
from fusion.alerting.probability import FAR_SIGMAS, box_distance
from fusion.alerting.rules import SEVERITIES, RuleSet, load_rules
from fusion.alerting.snapshot import Snapshot
from fusion.alerting.zones import Zone, ZoneSet
from fusion.geo import LocalFrame

__all__ = ["AlertEngine"]

_STATE_VERSION = 1
# Kinds whose alerts follow a condition on the live track; the others close on a hold.
_CONDITION_KINDS = ("incursion", "predicted_incursion", "loitering")
# Timers whose running means the track must be evaluated even far from the zone.
_LIVE_TIMERS = ("inc_on", "pred_on", "loit_t")


def _empty_zone_state() -> dict[str, np.ndarray]:
    st = {c: np.zeros(0) for c in STATE_COLUMNS}
    st["ids"] = np.zeros(0, np.int64)
    return st


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
        # Severity index per class code, per (zone, kind), looked up once.
        self._severity = {
            (z.name, kind): kinds.severity_by_class(self.rules.for_zone(z.name)[kind])
            for z in self.zones
            for kind in _CONDITION_KINDS
        }
        self._reset()

    def _reset(self) -> None:
        self._t: float | None = None
        self._snap = Snapshot.empty()
        self._ring = EvidenceRing()
        # Per-zone per-track columns, rows sorted by track id; only tracks that have
        # been near the zone (a side seen) or have a timer running hold a row.
        self._zst: dict[str, dict[str, np.ndarray]] = {
            z.name: _empty_zone_state() for z in self.zones
        }
        # Open alerts by id (insertion order = opening order); condition kinds also in
        # an OpenIndex per (zone, kind), hold kinds in _holds.
        self._open: dict[str, Episode] = {}
        self._index: dict[tuple[str, str], OpenIndex] = {
            (z.name, kind): OpenIndex() for z in self.zones for kind in _CONDITION_KINDS
        }
        self._holds: dict[str, Episode] = {}
        # Episodes so far per track: {track id: {(zone, kind): n}}; dropped with the track.
        self._counts: dict[int, dict[tuple[str, str], int]] = {}

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
            snap = Snapshot.checked(ids, x, P, cls, conf)
        deleted = np.unique(
            np.asarray([] if deleted_ids is None else deleted_ids, np.int64).ravel()
        )
        if deleted.size and len(snap):
            snap = snap.without(deleted)
        self._snap = snap
        self._t = t
        events: list[dict[str, Any]] = []
        # Tracks that went away: close their alerts; an open incursion becomes lost_inside.
        ring_ids = self._ring.ids
        if ring_ids.size == snap.sorted_ids.size and np.array_equal(ring_ids, snap.sorted_ids):
            gone = deleted
        else:
            gone = np.union1d(deleted, np.setdiff1d(ring_ids, snap.sorted_ids, True))
        if gone.size:
            self._handle_gone(t, gone, deleted, events)
        self._ring.keep(snap.sorted_ids)
        self.record_evidence(t, updated_ids, sensor_id)
        for zone in self.zones:
            self._step_zone(t, zone, snap, events)
        self._expire_holds(t, events)
        self._fill_lonlat(events)
        return events

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
        if sensor_id is None or updated_ids is None or self._ring.ids.size == 0:
            return
        updated = np.asarray(updated_ids, np.int64).ravel()
        if updated.size == 0:
            return
        code = self._ring.sensor_code(sensor_id)
        known = self._ring.record(t, updated, code)
        if known.size:
            for index in self._index.values():
                if len(index):
                    index.add_evidence(known, code)

    def open_alerts(self) -> list[dict[str, Any]]:
        """The latest event of every open alert, in opening order (for late subscribers)."""
        return [copy.deepcopy(ep.last_event) for ep in self._open.values()]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is (a deep copy)."""
        self._sync_all()
        ring = self._ring
        return copy.deepcopy(
            {
                "version": _STATE_VERSION,
                "t": self._t,
                "snapshot": self._snap.as_state(),
                "sensors": ring.sensors,
                "tracks": {"ids": ring.ids, "ev_code": ring.code, "ev_t": ring.when},
                "zones": self._zst,
                "open": [ep.to_state() for ep in self._open.values()],
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
        self._snap = Snapshot(s["ids"], s["x"], s["P_pos"], s["cls"], s["conf"])
        tracks = state["tracks"]
        self._ring.restore(tracks["ids"], tracks["ev_code"], tracks["ev_t"], state["sensors"])
        self._zst = state["zones"]
        for ep_state in state["open"]:
            self._register(Episode.from_state(ep_state), new=False)
        for tid, zone, kind, n in state["counts"]:
            self._counts.setdefault(int(tid), {})[(zone, kind)] = int(n)

    # ------------------------------------------------------------------ episodes

    def _register(self, ep: Episode, new: bool = True) -> None:
        self._open[ep.alert_id] = ep
        if ep.kind in _CONDITION_KINDS:
            self._index[(ep.zone, ep.kind)].add(ep, new)
        else:
            self._holds[ep.alert_id] = ep

    def _sync(self, ep: Episode) -> Episode:
        """Fold the pending evidence and latest track values of ``ep`` into it."""
        if ep.kind in _CONDITION_KINDS:
            index = self._index[(ep.zone, ep.kind)]
            index.sync(index.row(ep.track_id), self._ring.sensors, self.zones[ep.zone].sides)
        return ep

    def _sync_all(self) -> None:
        for (zone, _), index in self._index.items():
            for k in range(len(index)):  # checkpoints only, not per step
                index.sync(k, self._ring.sensors, self.zones[zone].sides)

    def _new_episode(self, t, zone, kind, tid, severity, side, evidence, fields,
                     related=None, hold=None) -> Episode:
        per = self._counts.setdefault(tid, {})
        n = per.get((zone, kind), 0)
        per[(zone, kind)] = n + 1
        ep = Episode(
            alert_id=f"{zone}:{kind}:{tid}:{n}", kind=kind, zone=zone, track_id=tid,
            opened_at=t, severity=severity, side=side, evidence=set(evidence),
            fields=fields, related=related, close_at=None if hold is None else t + hold,
            last_emit=t,
        )
        self._register(ep)
        return ep

    def _emit(self, ep: Episode, event: str, t: float, events: list, reason=None) -> None:
        """Send one event of ``ep`` (its fields already current); a close retires it."""
        events.append(ep.event(event, t, reason))
        if ep.kind not in _CONDITION_KINDS:
            if event == "close":
                del self._open[ep.alert_id]
                self._holds.pop(ep.alert_id, None)
            return
        index = self._index[(ep.zone, ep.kind)]
        if event == "close":
            del self._open[ep.alert_id]
            index.remove(ep)
        else:
            index.emitted(index.row(ep.track_id))

    def _follow_on(self, t: float, inc: Episode, kind: str, events: list) -> Episode | None:
        """Open the exit or lost-inside alert of a closing incursion, if its rule allows."""
        rule = self.rules.for_zone(inc.zone)[kind]
        severity = kinds.follow_on_severity(inc, rule)
        if severity is None:
            return None
        ep = self._new_episode(t, inc.zone, kind, inc.track_id, severity, inc.side,
                               inc.evidence, inc.fields, related=inc.alert_id, hold=rule.hold)
        self._emit(ep, "open", t, events)
        return ep

    def _handle_gone(self, t, gone: np.ndarray, deleted: np.ndarray, events) -> None:
        hit: set[str] = set()
        for index in self._index.values():
            if len(index):
                for k in np.flatnonzero(np.isin(index.tids, gone)).tolist():
                    hit.add(index.episodes[k].alert_id)
        for ep in [ep for aid, ep in self._open.items() if aid in hit]:  # opening order
            self._sync(ep)
            reason = "track_deleted" if ep.track_id in deleted else "track_gone"
            self._emit(ep, "close", t, events, reason)
            if ep.kind == "incursion":
                self._follow_on(t, ep, "lost_inside", events)
        for tid in gone.tolist():
            self._counts.pop(tid, None)

    def _expire_holds(self, t, events) -> None:
        for ep in list(self._holds.values()):
            if ep.close_at is not None and t >= ep.close_at - EPS_T:
                self._emit(ep, "close", t, events, "hold_elapsed")

    def _fill_lonlat(self, events) -> None:
        if self.frame is None or not events:
            return
        en = np.array([[e["position"]["east"], e["position"]["north"]] for e in events])
        lonlat = self.frame.to_lonlat(en)
        for e, (lon, lat) in zip(events, lonlat.tolist(), strict=True):
            e["position"]["lon"] = lon
            e["position"]["lat"] = lat

    # ------------------------------------------------------------------ one zone

    def _view(self, zone: Zone, snap: Snapshot) -> ZoneView:
        """The tracks of ``snap`` this zone must evaluate, with their geometry and timers.

        A track is evaluated if it is within the reach bound of the zone's bounding box
        (``FAR_SIGMAS`` sigmas, speed times the prediction horizon, the loitering band),
        has a timer running, or has an alert open here. Outside the bound P(inside) is
        0, no breach is due within the horizon and the track is out of the band.
        """
        zr = self.rules.for_zone(zone.name)
        pred, loit = zr.predicted_incursion, zr.loitering
        horizon = pred.horizon_close if pred.enabled else 0.0
        band = max(loit.band, 0.0) if loit.enabled else 0.0
        margin = np.maximum(np.maximum(FAR_SIGMAS * snap.sigma, snap.speed * horizon), band)
        near = box_distance(snap.x[:, :2], zone.bounds) <= margin + 1.0
        st = self._zst[zone.name]
        live = np.zeros(st["ids"].size, bool)
        for c in _LIVE_TIMERS:
            live |= ~np.isnan(st[c])
        keep = [st["ids"][live]] + [self._index[(zone.name, k)].tids for k in _CONDITION_KINDS]
        rows, found = snap.rows_of(np.concatenate(keep))
        active = near.copy()
        active[rows[found]] = True
        rows = np.flatnonzero(active)
        m = rows.size
        p_in, ttb = np.zeros(m), np.full(m, np.inf)
        dist, side = np.full(m, np.inf), np.zeros(m, np.int8)
        sub = np.flatnonzero(near[rows])
        if sub.size:
            r = rows[sub]
            got = zone.measure(snap.x[r, :2], snap.P_pos[r], snap.x[r, 2:4], horizon)
            p_in[sub], dist[sub], side[sub] = got.p_inside, got.distance, got.side
            if pred.enabled:
                ttb[sub] = got.time_to_breach
        ids = snap.ids[rows]
        k = np.minimum(np.searchsorted(st["ids"], ids), max(st["ids"].size - 1, 0))
        had = st["ids"][k] == ids if st["ids"].size else np.zeros(m, bool)
        col = {}
        for c in STATE_COLUMNS:
            col[c] = np.full(m, 0.0 if c == "side_from" else np.nan)
            col[c][had] = st[c][k[had]]
        # Where the track came from: the last side it was seen on while outside.
        col["side_from"] = np.where((dist > 0) & (side != 0), side, col["side_from"])
        return ZoneView(rows, ids, snap.x[rows, :2], snap.x[rows, 2:4], snap.speed[rows],
                        p_in, ttb, dist, side, snap.cls[rows], snap.conf[rows], col)

    def _keep_state(self, zone: Zone, v: ZoneView, snap: Snapshot) -> None:
        """Store the evaluated rows that carry anything, and the others still tracked."""
        st = self._zst[zone.name]
        idle = np.isin(st["ids"], v.ids, invert=True)
        _, present = snap.rows_of(st["ids"])
        carried = idle & present
        keep = v.col["side_from"] != 0
        for c in STATE_COLUMNS[1:]:
            keep |= ~np.isnan(v.col[c])
        ids = np.concatenate([st["ids"][carried], v.ids[keep]])
        order = np.argsort(ids, kind="stable")
        new = {c: np.concatenate([st[c][carried], v.col[c][keep]])[order] for c in STATE_COLUMNS}
        new["ids"] = ids[order]
        self._zst[zone.name] = new

    def _fields(self, zone: Zone, v: ZoneView, i: int):
        row = self._values(v, np.array([i]))[0].tolist()
        return fields_from_row(row, zone.sides)

    @staticmethod
    def _values(v: ZoneView, at: np.ndarray) -> np.ndarray:
        """``FIELD_COLUMNS`` of view positions ``at``, shape (K, len(FIELD_COLUMNS))."""
        ttb = v.ttb[at]
        return np.column_stack([
            v.pos[at, 0], v.pos[at, 1], v.vel[at, 0], v.vel[at, 1], v.speed[at],
            v.p_inside[at], np.where(np.isfinite(ttb), ttb, np.nan), v.side[at],
            v.cls[at], v.conf[at],
        ])

    def _close(self, t, zone, v, kind, at, reason, events) -> list[Episode]:
        """Close the ``kind`` alerts of view positions ``at`` (ascending).

        ``reason`` is the close reason, or ``reason(episode, position)`` giving it.
        """
        index = self._index[(zone.name, kind)]
        closed = []
        for i in at.tolist():
            ep = self._sync(index.episodes[index.row(int(v.ids[i]))])
            ep.fields = self._fields(zone, v, i)
            why = reason(ep, i) if callable(reason) else reason
            self._emit(ep, "close", t, events, why)
            closed.append(ep)
        return closed

    def _open_new(self, t, zone, v, kind, at, since, events) -> None:
        """Open ``kind`` alerts for view positions ``at``; evidence since ``since``."""
        rule = self.rules.for_zone(zone.name)[kind]
        for i in at.tolist():
            tid = int(v.ids[i])
            fields = self._fields(zone, v, i)
            side = zone.side_name(int(v.col["side_from"][i]) or int(v.side[i]))
            ep = self._new_episode(t, zone.name, kind, tid, rule.severity_for(fields["cls"]),
                                   side, self._ring.since(tid, since[i]), fields)
            self._emit(ep, "open", t, events)

    def _is_open(self, zone: Zone, kind: str, v: ZoneView) -> np.ndarray:
        tids = self._index[(zone.name, kind)].tids
        if tids.size == 0:
            return np.zeros(v.ids.size, bool)
        k = np.minimum(np.searchsorted(tids, v.ids), tids.size - 1)
        return tids[k] == v.ids

    def _close_all(self, t, zone: Zone, kind: str, events) -> None:
        index = self._index[(zone.name, kind)]
        for ep in list(index.episodes):  # ascending track id
            self._emit(self._sync(ep), "close", t, events, "rule_disabled")

    def _step_zone(self, t: float, zone: Zone, snap: Snapshot, events: list) -> None:
        zr = self.rules.for_zone(zone.name)
        inc, pred, loit = zr.incursion, zr.predicted_incursion, zr.loitering
        v = self._view(zone, snap)
        if inc.enabled:
            close, open_ = kinds.incursion(v, inc, t, self._is_open(zone, "incursion", v))
            for ep in self._close(t, zone, v, "incursion", close, "left_zone", events):
                self._follow_on(t, ep, "exit", events)
            self._open_new(t, zone, v, "incursion", open_, v.col["inc_on"], events)
        else:
            self._close_all(t, zone, "incursion", events)
        inc_open = self._is_open(zone, "incursion", v)
        if pred.enabled:
            entered = inc_open if inc.enabled else (v.dist == 0)
            is_open = self._is_open(zone, "predicted_incursion", v)
            close, open_ = kinds.predicted_incursion(v, pred, t, is_open, inc_open, entered)

            def reason(ep: Episode, i: int) -> str:
                if entered[i] and inc.enabled:
                    ep.related = self._index[(zone.name, "incursion")].get(ep.track_id).alert_id  # type: ignore[union-attr]
                    return "incursion"
                return "entered" if entered[i] else "cleared"

            self._close(t, zone, v, "predicted_incursion", close, reason, events)
            self._open_new(t, zone, v, "predicted_incursion", open_, v.col["pred_on"], events)
        else:
            self._close_all(t, zone, "predicted_incursion", events)
        if loit.enabled:
            close, open_ = kinds.loitering(v, loit, t, self._is_open(zone, "loitering", v))
            self._close(t, zone, v, "loitering", close, "loiter_ended", events)
            self._open_new(t, zone, v, "loitering", open_, v.col["loit_t"], events)
        else:
            self._close_all(t, zone, "loitering", events)
        self._refresh_open(t, zone, v, events)
        self._keep_state(zone, v, snap)

    def _refresh_open(self, t, zone: Zone, v: ZoneView, events) -> None:
        """Take every open alert's track values; send the updates that are due.

        An update is due every ``update_interval`` seconds, or when the severity (by
        the track's class now) changed; alerts opened in this step are left alone.
        """
        for kind in _CONDITION_KINDS:
            index = self._index[(zone.name, kind)]
            if not len(index):
                continue
            k = np.minimum(np.searchsorted(v.ids, index.tids), v.ids.size - 1)
            present = v.ids[k] == index.tids if v.ids.size else np.zeros(len(index), bool)
            at = k[present]
            index.values[present] = self._values(v, at)
            # Alerts opened in this step already hold this step's values.
            fresh = present & ~index.new
            index.fresh |= fresh
            index.new[:] = False
            severity = np.zeros(len(index), np.int8)
            severity[present] = self._severity[(zone.name, kind)][v.cls[at]]
            rule = self.rules.for_zone(zone.name)[kind]
            due = (rule.update_interval > 0) & (
                t - index.last_emit >= rule.update_interval - EPS_T
            )
            for row in np.flatnonzero(fresh & ((severity != index.severity) | due)).tolist():
                ep = index.sync(row, self._ring.sensors, zone.sides)
                ep.severity = SEVERITIES[severity[row]]
                self._emit(ep, "update", t, events)
