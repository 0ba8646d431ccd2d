"""Alert episodes: one typed record per alert, and the index of the open ones.

An :class:`Episode` is one alert from its ``open`` event to its ``close`` event. Its
checkpoint form (:meth:`Episode.to_state`) is a plain dict of the same keys, with the
evidence as a sorted list; :mod:`fusion.service.recovery` builds episodes from logged
events with :meth:`Episode.from_event`.

The open episodes of one zone and kind are also held column-wise in an
:class:`OpenIndex` (rows sorted by track id), so that the engine's per-step questions
-- which open alerts did this batch's sensor update, which are due an update, whose
severity changed -- are array operations, and the per-alert Python runs only for the
few alerts that actually emit an event.

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
    p_breach          float  probability the track enters within the predicted-incursion
                             rule's horizon (1 inside; 0 far from the zone)
    horizon           float or None  that horizon, seconds (predicted_incursion
                             alerts; None on other kinds)
    closest_approach  float or None  metres from the edge at the track's closest
                             during the warning (probe alerts; None on other kinds)
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
                             predicted_incursion belongs to; the predicted
                             incursion a probe follows
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import compress
from typing import Any, TypedDict

import numpy as np

from fusion.alerting.rules import SEVERITIES
from fusion.messages import CLASSES

__all__ = [
    "FIELD_COLUMNS",
    "Episode",
    "Fields",
    "OpenIndex",
    "fields_from_row",
    "fill_lonlat",
]


class Fields(TypedDict):
    """The track's state at an episode's latest event (or latest step)."""

    east: float | None
    north: float | None
    v_east: float | None
    v_north: float | None
    speed: float | None
    p_inside: float | None
    ttb: float | None
    p_breach: float | None
    side_now: str | None
    cls: str | None
    conf: float | None


# Numeric encoding of Fields, one float column each: ttb NaN = None, side_now as the
# zone's side code (1, -1, 0 = None) and cls as the CLASSES index.
FIELD_COLUMNS = (
    "east",
    "north",
    "v_east",
    "v_north",
    "speed",
    "p_inside",
    "ttb",
    "p_breach",
    "side",
    "cls",
    "conf",
)


def fields_from_row(row: list[float], side_names: tuple[str, str]) -> Fields:
    """Decode one ``FIELD_COLUMNS`` row (a list of Python floats) into :class:`Fields`."""
    east, north, ve, vn, speed, p_in, ttb, p_breach, side, cls, conf = row
    return {
        "east": east,
        "north": north,
        "v_east": ve,
        "v_north": vn,
        "speed": speed,
        "p_inside": p_in,
        "ttb": None if math.isnan(ttb) else ttb,
        "p_breach": p_breach,
        "side_now": side_names[0] if side > 0 else side_names[1] if side < 0 else None,
        "cls": CLASSES[int(cls)],
        "conf": conf,
    }


@dataclass
class Episode:
    """One alert: identity, what it says, and when it last spoke.

    Attributes
    ----------
    alert_id : str
        ``"<zone>:<kind>:<track id>:<n>"``.
    kind, zone : str
    track_id : int
    opened_at : float
    severity : str
    side : str or None
        Side the track came from.
    evidence : set of str
        Sensors that updated the track during the episode.
    fields : Fields
        The track at the latest event or step.
    related : str or None
        The incursion an exit / lost_inside / closed predicted incursion belongs to.
    close_at : float or None
        When a hold-kind alert closes by itself.
    horizon : float or None
        The look-ahead its rule predicts over (predicted_incursion).
    closest_approach : float or None
        Metres from the edge at the track's closest during the warning (probe).
    last_emit : float
        Time of its latest event.
    last_event : dict or None
        Its latest event, for late subscribers.
    """

    alert_id: str
    kind: str
    zone: str
    track_id: int
    opened_at: float
    severity: str
    side: str | None
    evidence: set[str]
    fields: Fields
    related: str | None = None
    close_at: float | None = None
    horizon: float | None = None
    closest_approach: float | None = None
    last_emit: float = 0.0
    last_event: dict[str, Any] | None = field(default=None, repr=False)

    def event(self, event: str, t: float, reason: str | None = None) -> dict[str, Any]:
        """The event map (see :mod:`fusion.alerting.engine`); it becomes ``last_event``."""
        f = self.fields
        ev = {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "event": event,
            "severity": self.severity,
            "zone": self.zone,
            "track_id": self.track_id,
            "t": t,
            "position": {"east": f["east"], "north": f["north"], "lon": None, "lat": None},
            "velocity": {"east": f["v_east"], "north": f["v_north"]},
            "speed": f["speed"],
            "p_inside": f["p_inside"],
            "time_to_breach": f["ttb"],
            "p_breach": f.get("p_breach"),
            "horizon": self.horizon,
            "closest_approach": self.closest_approach,
            "side": self.side,
            "side_now": f["side_now"],
            "cls": f["cls"],
            "conf": f["conf"],
            "evidence": sorted(self.evidence),
            "opened_at": self.opened_at,
            "closed_at": t if event == "close" else None,
            "reason": reason,
            "related_alert_id": self.related,
        }
        self.last_event = ev
        self.last_emit = t
        return ev

    def to_state(self) -> dict[str, Any]:
        """Checkpoint form: a plain dict, evidence as a sorted list."""
        state = asdict(self)
        state["evidence"] = sorted(self.evidence)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Episode:
        """Inverse of :meth:`to_state`."""
        evidence, track_id = set(state["evidence"]), int(state["track_id"])
        return cls(**{**state, "evidence": evidence, "track_id": track_id})

    @classmethod
    def from_event(cls, ev: dict[str, Any], hold: float | None) -> Episode:
        """The open episode a logged event describes (``hold``: its kind's hold, if any)."""
        opened_at = ev.get("opened_at", ev["t"])
        return cls(
            alert_id=ev["alert_id"],
            kind=ev["kind"],
            zone=ev["zone"],
            track_id=int(ev["track_id"]),
            opened_at=opened_at,
            severity=ev.get("severity"),  # type: ignore[arg-type]
            side=ev.get("side"),
            evidence=set(ev.get("evidence") or []),
            fields=_fields_of_event(ev),
            related=ev.get("related_alert_id"),
            close_at=None if hold is None else opened_at + hold,
            horizon=ev.get("horizon"),
            closest_approach=ev.get("closest_approach"),
            last_emit=ev["t"],
            last_event=dict(ev),
        )

    def apply_event(self, ev: dict[str, Any]) -> None:
        """Take a later logged ``open``/``update`` event of this episode."""
        self.fields = _fields_of_event(ev)
        self.severity = ev.get("severity")  # type: ignore[assignment]
        self.evidence |= set(ev.get("evidence") or [])
        self.last_emit = ev["t"]
        self.last_event = dict(ev)


def _fields_of_event(ev: dict[str, Any]) -> Fields:
    pos, vel = ev.get("position") or {}, ev.get("velocity") or {}
    return {
        "east": pos.get("east"),
        "north": pos.get("north"),
        "v_east": vel.get("east"),
        "v_north": vel.get("north"),
        "speed": ev.get("speed"),
        "p_inside": ev.get("p_inside"),
        "ttb": ev.get("time_to_breach"),
        "p_breach": ev.get("p_breach"),
        "side_now": ev.get("side_now"),
        "cls": ev.get("cls"),
        "conf": ev.get("conf"),
    }


class OpenIndex:
    """The open episodes of one zone and kind, column-wise, rows sorted by track id.

    Attributes
    ----------
    tids : ndarray, shape (K,), int64
        Track ids, ascending.
    episodes : list of Episode
        ``episodes[k]`` belongs to ``tids[k]``.
    last_emit : ndarray, shape (K,)
        Time of each episode's latest event.
    severity : ndarray, shape (K,), int8
        Index of each episode's severity in ``SEVERITIES``.
    evidence : ndarray, shape (K, S), bool
        Sensors (by code) that updated the track since the episode's evidence was last
        folded into ``Episode.evidence``.
    view_pos : ndarray, shape (K,), intp
        Where the track sits in its zone's latest view, valid where ``fresh``.
    fresh : ndarray, shape (K,), bool
        The latest view's values of the track are newer than ``Episode.fields``.
    new : ndarray, shape (K,), bool
        Opened in the current step (its fields are this step's already).
    """

    def __init__(self) -> None:
        self.tids = np.zeros(0, np.int64)
        self.episodes: list[Episode] = []
        self.last_emit = np.zeros(0)
        self.severity = np.zeros(0, np.int8)
        self.evidence = np.zeros((0, 0), bool)
        self.view_pos = np.zeros(0, np.intp)
        self.fresh = np.zeros(0, bool)
        self.new = np.zeros(0, bool)

    def __len__(self) -> int:
        return self.tids.size

    def row(self, tid: int) -> int:
        """Row of track ``tid`` (which must be open here)."""
        return int(self.tids.searchsorted(tid))

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (any order) have an episode here, shape (M,) bool."""
        if self.tids.size == 0:
            return np.zeros(ids.size, bool)
        k = np.minimum(self.tids.searchsorted(ids), self.tids.size - 1)
        return self.tids[k] == ids

    def get(self, tid: int) -> Episode | None:
        k = int(self.tids.searchsorted(tid))
        return self.episodes[k] if k < self.tids.size and self.tids[k] == tid else None

    def add(self, ep: Episode, new: bool = True) -> None:
        k = int(self.tids.searchsorted(ep.track_id))
        self.episodes.insert(k, ep)
        # Concatenations: np.insert spends several microseconds on its arguments.
        self.tids = _inserted(self.tids, k, ep.track_id)
        self.last_emit = _inserted(self.last_emit, k, ep.last_emit)
        self.severity = _inserted(self.severity, k, SEVERITIES.index(ep.severity))
        self.evidence = _inserted(self.evidence, k, False)
        self.view_pos = _inserted(self.view_pos, k, 0)
        self.fresh = _inserted(self.fresh, k, False)
        self.new = _inserted(self.new, k, new)

    def remove(self, ep: Episode) -> None:
        k = self.row(ep.track_id)
        del self.episodes[k]
        for name in ("tids", "last_emit", "severity", "evidence", "view_pos", "fresh", "new"):
            column = getattr(self, name)
            setattr(self, name, np.concatenate((column[:k], column[k + 1 :])))

    def add_evidence(self, updated: np.ndarray, code: int) -> None:
        """Mark sensor ``code`` on every open episode whose track is in ``updated``.

        Parameters
        ----------
        updated : ndarray, shape (U,), int64
            Track ids, ascending.
        code : int
            Sensor code.
        """
        if code >= self.evidence.shape[1]:
            grown = np.zeros((self.tids.size, max(2 * code, 8)), bool)
            grown[:, : self.evidence.shape[1]] = self.evidence
            self.evidence = grown
        k = np.minimum(updated.searchsorted(self.tids), updated.size - 1)
        self.evidence[updated[k] == self.tids, code] = True

    def take_evidence(self, k: int, sensors: list[str]) -> Episode:
        """Fold row ``k``'s pending evidence (sensor codes) into its Episode."""
        ep = self.episodes[k]
        if self.evidence.shape[1]:
            codes = self.evidence[k].nonzero()[0]
            if codes.size:
                ep.evidence.update(sensors[c] for c in codes.tolist())
                self.evidence[k] = False
        return ep

    def take_evidence_many(self, rows: np.ndarray, sensors: list[str]) -> list[Episode]:
        """:meth:`take_evidence` of rows ``rows`` (K,), distinct; their Episodes in order."""
        episodes = [self.episodes[k] for k in rows.tolist()]
        if self.evidence.shape[1]:
            flags = self.evidence[rows]
            for ep, row_flags in zip(episodes, flags.tolist(), strict=True):
                if True in row_flags:
                    ep.evidence.update(compress(sensors, row_flags))
            self.evidence[rows] = False
        return episodes

    def emitted(self, k: int) -> None:
        """Row ``k``'s Episode just sent an event: mirror its time and severity."""
        ep = self.episodes[k]
        self.last_emit[k] = ep.last_emit
        self.severity[k] = SEVERITIES.index(ep.severity)
        self.fresh[k] = False


def _inserted(column: np.ndarray, k: int, value: Any) -> np.ndarray:
    """``column`` (K, ...) with a row of ``value`` inserted before row ``k``."""
    row = np.full((1, *column.shape[1:]), value, column.dtype)
    return np.concatenate((column[:k], row, column[k:]))


def fill_lonlat(events: list[dict[str, Any]], frame: Any) -> None:
    """Add lon/lat to the events' positions (one projection call for all of them)."""
    if not events:
        return
    en = np.array([[e["position"]["east"], e["position"]["north"]] for e in events])
    lonlat = frame.to_lonlat(en)
    for e, (lon, lat) in zip(events, lonlat.tolist(), strict=True):
        e["position"]["lon"] = lon
        e["position"]["lat"] = lat
