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

The alert kinds and their lifecycle are described in :mod:`fusion.alerting.kinds`.

Every alert is one episode with a stable id ``"<zone>:<kind>:<track id>:<n>"`` (``n``
counts that track's episodes of that kind in that zone from 0), an ``open`` event, any
``update`` events (every ``update_interval`` seconds, or when the severity changes) and
one ``close`` event. The ids depend only on the input sequence, so replays give the
same ids.

The event map's keys and their meaning are listed in :mod:`fusion.alerting.episodes`.

Track ids are assumed never to be reused by the tracker.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from fusion.alerting import kinds
from fusion.alerting.breach import BreachModel
from fusion.alerting.episodes import Episode, Fields, fields_from_row, fill_lonlat
from fusion.alerting.evidence import EvidenceRing
from fusion.alerting.kinds import EPS_T
from fusion.alerting.registry import CONDITION_KINDS, OpenAlerts
from fusion.alerting.rules import SEVERITIES, RuleSet, load_rules
from fusion.alerting.snapshot import Snapshot
from fusion.alerting.views import ZoneState, ZoneView, build_view
from fusion.alerting.zones import Zone, ZoneSet
from fusion.geo import LocalFrame

__all__ = ["AlertEngine"]

_STATE_VERSION = 1


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
        # What each zone's predicted-incursion rule predicts over.
        self._breach = {
            z.name: BreachModel.from_rule(self.rules.for_zone(z.name).predicted_incursion)
            for z in self.zones
        }
        # Severity index per class code, per (zone, kind), looked up once.
        self._severity = {
            (z.name, kind): kinds.severity_by_class(self.rules.for_zone(z.name)[kind])
            for z in self.zones
            for kind in CONDITION_KINDS
        }
        self._reset()

    def _reset(self) -> None:
        self._t: float | None = None
        self._snap = Snapshot.empty()
        self._ring = EvidenceRing()
        # Per-zone per-track columns, rows sorted by track id; only tracks that have
        # been near the zone (a side seen) or have a timer running hold a row.
        self._zst: dict[str, ZoneState] = {z.name: ZoneState.empty() for z in self.zones}
        # Each zone's latest view (what fresh open alerts read their fields from).
        self._views: dict[str, ZoneView] = {}
        self._alerts = OpenAlerts(self.zones.names)
        self._index = self._alerts.index

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
        mu: np.ndarray | None = None,
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
        mu : ndarray, shape (2, N), optional
            IMM mode probabilities (quiet, manoeuvring), for breach probabilities
            (without them the rule's ``manoeuvre_prob`` stands in).

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
            if any(a is not None for a in (x, P, cls, conf, mu)):
                raise ValueError("x, P, cls and conf come with ids; pass ids too")
            snap = self._snap
        else:
            snap = Snapshot.checked(ids, x, P, cls, conf, mu)
        deleted = np.asarray([] if deleted_ids is None else deleted_ids, np.int64).ravel()
        if deleted.size > 1 and not (deleted[1:] > deleted[:-1]).all():
            deleted = np.unique(deleted)  # the tracker lists them once each, ascending
        if deleted.size and len(snap):
            snap = snap.without(deleted)
        self._snap = snap
        self._t = t
        events: list[dict[str, Any]] = []
        self._retire_gone(t, snap, deleted, events)
        self.record_evidence(t, updated_ids, sensor_id)
        for zone in self.zones:
            self._step_zone(t, zone, snap, events)
        self._expire_holds(t, events)
        if self.frame is not None:
            fill_lonlat(events, self.frame)
        return events

    def _retire_gone(self, t: float, snap: Snapshot, deleted: np.ndarray, events) -> None:
        """Close the alerts of the tracks seen last step that are deleted or missing now
        (an open incursion becomes lost_inside); evidence rows follow the snapshot."""
        ring_ids, ids = self._ring.ids, snap.sorted_ids
        same = ring_ids.size == ids.size and bool((ring_ids == ids).all())
        if not same:
            gone = np.union1d(deleted, np.setdiff1d(ring_ids, ids, True))
        elif deleted.size and ring_ids.size:  # the usual step: the same tracks as the last
            # Tentative tracks the tracker deleted never reached the engine: not gone.
            k = np.minimum(ring_ids.searchsorted(deleted), ring_ids.size - 1)
            gone = deleted[ring_ids[k] == deleted]
        else:
            gone = deleted[:0]
        if gone.size:
            self._handle_gone(t, gone, deleted, events)
        if not same:
            self._ring.keep(ids)

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
        return [copy.deepcopy(ep.last_event or {}) for ep in self._alerts.by_id.values()]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is (a deep copy)."""
        self._sync_all()
        ring = self._ring
        open_states, counts = self._alerts.state()
        return copy.deepcopy(
            {
                "version": _STATE_VERSION,
                "t": self._t,
                "snapshot": self._snap.as_state(),
                "sensors": ring.sensors,
                "tracks": {"ids": ring.ids, "ev_code": ring.code, "ev_t": ring.when},
                "zones": {name: st.as_columns() for name, st in self._zst.items()},
                "open": open_states,
                "counts": counts,
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
        self._snap = Snapshot(
            s["ids"], s["x"], s["P_pos"], s["cls"], s["conf"], s.get("P_vel"), s.get("mu")
        )
        tracks = state["tracks"]
        self._ring.restore(tracks["ids"], tracks["ev_code"], tracks["ev_t"], state["sensors"])
        self._zst = {name: ZoneState.from_columns(z) for name, z in state["zones"].items()}
        self._alerts.restore(state["open"], state["counts"])

    # ------------------------------------------------------------------ episodes

    def _sync(self, ep: Episode) -> Episode:
        """Fold the pending evidence and latest track values of ``ep`` into it."""
        if ep.kind in CONDITION_KINDS:
            index = self._index[(ep.zone, ep.kind)]
            k = index.row(ep.track_id)
            index.take_evidence(k, self._ring.sensors)
            if index.fresh[k]:
                view = self._views[ep.zone]
                ep.fields = fields_from_row(
                    view.values(int(index.view_pos[k])), self.zones[ep.zone].sides
                )
                index.fresh[k] = False
        return ep

    def _sync_all(self) -> None:
        for index in self._index.values():
            for ep in index.episodes:  # checkpoints only, not per step
                self._sync(ep)

    def _emit(self, ep: Episode, event: str, t: float, events: list, reason=None) -> None:
        """Send one event of ``ep`` (its fields already current); a close retires it."""
        events.append(ep.event(event, t, reason))
        self._alerts.emitted(ep, event)

    def _follow_on(
        self, t: float, cause: Episode, kind: str, events: list, closest: float | None = None
    ) -> Episode | None:
        """Open the exit, lost-inside or probe alert of a closing episode (an incursion;
        a predicted incursion, ``closest`` metres from the edge at most), if its rule
        allows."""
        rule = self.rules.for_zone(cause.zone)[kind]
        severity = kinds.follow_on_severity(cause, rule)
        if severity is None:
            return None
        ep = self._alerts.open(
            t, cause.zone, kind, cause.track_id, severity, cause.side, cause.evidence,
            cause.fields, related=cause.alert_id, hold=getattr(rule, "hold", 0.0),
        )  # fmt: skip
        ep.closest_approach = closest
        self._emit(ep, "open", t, events)
        return ep

    def _handle_gone(self, t, gone: np.ndarray, deleted: np.ndarray, events) -> None:
        for ep in self._alerts.on_tracks(gone):
            self._sync(ep)
            reason = "track_deleted" if ep.track_id in deleted else "track_gone"
            self._emit(ep, "close", t, events, reason)
            if ep.kind == "incursion":
                self._follow_on(t, ep, "lost_inside", events)
        self._alerts.forget(gone)

    def _expire_holds(self, t, events) -> None:
        for ep in list(self._alerts.holds.values()):
            if ep.close_at is not None and t >= ep.close_at - EPS_T:
                self._emit(ep, "close", t, events, "hold_elapsed")

    # ------------------------------------------------------------------ one zone

    def _fields(self, zone: Zone, v: ZoneView, i: int) -> Fields:
        return fields_from_row(v.values(i), zone.sides)

    def _close(self, t, zone, v, kind, at, reason, events) -> list[Episode]:
        """Close the ``kind`` alerts of view positions ``at`` (ascending).

        ``reason`` is the close reason, or ``reason(episode, position)`` giving it.
        """
        if not at.size:
            return []
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
        """Open ``kind`` alerts for view positions ``at``; evidence since ``since``.

        No alert opens on a prediction alone: a track that no sensor updated while its
        condition held (a track coasting after a restart, a ghost) waits until one does.
        """
        if not at.size:
            return
        rule = self.rules.for_zone(zone.name)[kind]
        for i in at.tolist():
            tid = int(v.ids[i])
            evidence = self._ring.since(tid, since[i])
            if not evidence:
                continue
            fields = self._fields(zone, v, i)
            side = zone.side_name(int(v.col["side_from"][i]) or int(v.side[i]))
            severity = rule.severity_for(fields["cls"] or "unknown")
            ep = self._alerts.open(t, zone.name, kind, tid, severity, side, evidence, fields)
            ep.horizon = getattr(rule, "horizon", None)
            self._emit(ep, "open", t, events)

    def _is_open(self, zone: Zone, kind: str, v: ZoneView) -> np.ndarray:
        return self._index[(zone.name, kind)].holds(v.ids)

    def _close_all(self, t, zone: Zone, kind: str, events) -> None:
        index = self._index[(zone.name, kind)]
        for ep in list(index.episodes):  # ascending track id
            self._emit(self._sync(ep), "close", t, events, "rule_disabled")

    def _step_zone(self, t: float, zone: Zone, snap: Snapshot, events: list) -> None:
        zr = self.rules.for_zone(zone.name)
        inc, pred, loit = zr.incursion, zr.predicted_incursion, zr.loitering
        v = build_view(
            zone,
            snap,
            pred.horizon_close if pred.enabled else None,
            max(loit.band, 0.0) if loit.enabled else 0.0,
            self._zst[zone.name],
            [self._index[(zone.name, k)].tids for k in CONDITION_KINDS],
            self._breach[zone.name] if pred.enabled else None,
        )
        inc_open = self._is_open(zone, "incursion", v)
        if inc.enabled:
            close, open_ = kinds.incursion(v, inc, t, inc_open)
            for ep in self._close(t, zone, v, "incursion", close, "left_zone", events):
                self._follow_on(t, ep, "exit", events)
            self._open_new(t, zone, v, "incursion", open_, v.col["inc_on"], events)
            if close.size or open_.size:  # the open incursions changed
                inc_open = self._is_open(zone, "incursion", v)
        else:
            self._close_all(t, zone, "incursion", events)
            inc_open = self._is_open(zone, "incursion", v)
        if pred.enabled:
            entered = inc_open if inc.enabled else (v.dist == 0)
            is_open = self._is_open(zone, "predicted_incursion", v)
            close, open_ = kinds.predicted_incursion(v, pred, t, is_open, inc_open, entered)

            def reason(ep: Episode, i: int) -> str:
                if entered[i] and inc.enabled:  # the prediction came true
                    ep.related = self._index[(zone.name, "incursion")].get(ep.track_id).alert_id  # type: ignore[union-attr]
                return kinds.predicted_close_reason(bool(entered[i]), inc.enabled)

            closed = self._close(t, zone, v, "predicted_incursion", close, reason, events)
            why = [ep.last_event["reason"] for ep in closed]  # type: ignore[index]
            for k in kinds.probe_mask(v, zr.probe, close, why).nonzero()[0].tolist():
                near = float(v.col["pred_near"][close[k]])
                self._follow_on(t, closed[k], "probe", events, near)
            self._open_new(t, zone, v, "predicted_incursion", open_, v.col["pred_on"], events)
        else:
            self._close_all(t, zone, "predicted_incursion", events)
        if loit.enabled:
            close, open_ = kinds.loitering(v, loit, t, self._is_open(zone, "loitering", v))
            self._close(t, zone, v, "loitering", close, "loiter_ended", events)
            self._open_new(t, zone, v, "loitering", open_, v.col["loit_t"], events)
        else:
            self._close_all(t, zone, "loitering", events)
        self._views[zone.name] = v
        self._refresh_open(t, zone, v, events)
        self._zst[zone.name] = self._zst[zone.name].after(v, snap)

    def _refresh_open(self, t, zone: Zone, v: ZoneView, events) -> None:
        """Point every open alert at its track in this view; send the updates that are due.

        An update is due every ``update_interval`` seconds, or when the severity (by
        the track's class now) changed; alerts opened in this step are left alone.
        """
        for kind in CONDITION_KINDS:
            index = self._index[(zone.name, kind)]
            if not len(index):
                continue
            at, present = v.positions_of(index.tids)
            index.view_pos = at
            # Alerts opened in this step already hold this step's values.
            fresh = present & ~index.new
            index.fresh = fresh
            index.new[:] = False
            severity = self._severity[(zone.name, kind)][v.cls[at]]
            rule = self.rules.for_zone(zone.name)[kind]
            due = (rule.update_interval > 0) & (t - index.last_emit >= rule.update_interval - EPS_T)
            rows = (fresh & ((severity != index.severity) | due)).nonzero()[0]
            if rows.size:
                self._send_updates(t, zone, v, index, rows, severity[rows], events)

    def _send_updates(self, t, zone, v, index, rows, severity, events) -> None:
        """One update event per row of ``index`` (whose track is in view ``v``)."""
        values = v.values_many(index.view_pos[rows])
        episodes = index.take_evidence_many(rows, self._ring.sensors)
        for ep, row_values, level in zip(episodes, values, severity.tolist(), strict=True):
            ep.fields = fields_from_row(row_values, zone.sides)
            ep.severity = SEVERITIES[level]
            events.append(ep.event("update", t))
        index.fresh[rows] = False
        index.last_emit[rows] = t
        index.severity[rows] = severity
