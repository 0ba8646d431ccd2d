"""Sensor liveness: notice when a sensor goes silent, and which tracks that leaves blind.

A sensor that stops sending is not the same as a quiet zone, yet without this module the
tracker cannot tell them apart: its tracks coast on, alerts stay open, and nobody hears
why. :class:`SensorLiveness` learns each sensor's expected period, decides from a clock
when it has been silent for ``silent_periods`` of them, and produces the alert events
that say so (``sensor_silent``) and that it came back (``sensor_back``).
:func:`degraded_tracks` then names the tracks that lie inside a silent sensor's
coverage and were seen by no live sensor lately, so they are shown as degraded rather
than silently coasting.

No socket here: the service calls :meth:`SensorLiveness.observe` for every accepted
batch, :meth:`SensorLiveness.check` from its timer, and publishes what they return.

Expected period
---------------
Configured per sensor id (``expected_periods``), or learned as the median of the last
``history`` wall-clock gaps between batches (the median, so one burst after a network
stall or one dropped frame does not move it), trusted once ``learn_batches`` gaps are
in. Until then a *known* sensor (configured with a period, or registered with the
service) is judged against ``max_silence``, so one that sends one batch and dies is
still reported. An id the service was never told about is watched only once its period
is learned: in insecure mode anyone can invent ids, and a thousand ids that each send
one batch must not become a thousand ``sensor_silent`` alerts.

Clock
-----
Wall-clock seconds (``time.monotonic`` in the service; injected in tests). A silent
sensor is a fact about arrivals, so measurement times play no part in the decision;
they are only carried in the event for the operator.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.tracking.coverage import points_in_polygon

# The zone name system alerts are published under: ``alert.sensors.sensor_silent``.
# A sensor's silence belongs to no zone; one fixed name keeps the topic scheme
# (``alert.<zone>.<kind>``) and lets a subscriber ask for exactly these.
SYSTEM_ZONE = "sensors"
KINDS = ("sensor_silent", "sensor_back")


@dataclass(frozen=True)
class LivenessConfig:
    """When a sensor counts as silent; the ``[liveness]`` table of a service config.

    Attributes
    ----------
    silent_periods : float
        A sensor is silent after this many expected periods without a batch.
    min_silence : float
        Never silent sooner than this (s): a 10 Hz radar must not flap on one GC pause.
    max_silence : float
        Always silent after this (s), whatever the period; also the rule while a
        sensor's period is still being learned.
    learn_batches : int
        Gaps between batches needed before the learned period is trusted.
    history : int
        Gaps kept per sensor for the median (bounded memory per sensor).
    expected_periods : mapping of str to float
        Configured periods (s) by sensor id; these win over learned ones.
    severity : str
        Severity of ``sensor_silent`` alerts.
    track_memory : float
        Seconds a sensor's update of a track counts as "seen lately" for
        :func:`degraded_tracks`.
    """

    silent_periods: float = 5.0
    min_silence: float = 2.0
    max_silence: float = 60.0
    learn_batches: int = 8
    history: int = 64
    expected_periods: Mapping[str, float] = field(default_factory=dict)
    severity: str = "high"
    track_memory: float = 30.0

    @classmethod
    def from_toml(cls, path: str, table: str = "liveness") -> LivenessConfig:
        """Load from the ``[liveness]`` table of a TOML file (missing keys keep defaults)."""
        from fusion.config import from_mapping, load_toml

        return from_mapping(cls, load_toml(path).get(table, {}), table)

    def __post_init__(self) -> None:
        if not self.silent_periods > 0:
            raise ValueError(f"liveness.silent_periods must be > 0, got {self.silent_periods}")
        if not 0 <= self.min_silence <= self.max_silence:
            raise ValueError("liveness: need 0 <= min_silence <= max_silence")
        if self.learn_batches < 1 or self.history < self.learn_batches:
            raise ValueError("liveness: need 1 <= learn_batches <= history")
        for sensor, period in self.expected_periods.items():
            if not period > 0:
                raise ValueError(f"liveness.expected_periods[{sensor!r}] must be > 0")


@dataclass
class _Sensor:
    """What is known of one sensor; one small object per sensor id, never per batch."""

    kind: str
    last_wall: float
    gaps: deque[float]
    last_t: float | None = None
    coverage: np.ndarray | None = None
    silent_since: float | None = None
    episode: int = 0
    alert: dict[str, Any] | None = None


class SensorLiveness:
    """Per-sensor expected period and silent/back decisions.

    Parameters
    ----------
    config : LivenessConfig
    clock : callable
        Wall-clock seconds; the service passes ``time.monotonic``.
    to_lonlat : callable, optional
        ``to_lonlat(en (K, 2)) -> (K, 2)`` (a :class:`fusion.geo.LocalFrame`'s), for the
        lon/lat of the sensor's coverage centre in events.
    known : iterable of str
        Sensor ids registered with the service: their silence is reported even before
        their period is learned. Ids configured in ``expected_periods`` are known too.

    Notes
    -----
    Memory is one :class:`_Sensor` per id observed, each with at most
    ``config.history`` gaps; the service only observes admitted batches, whose ids are
    already capped by admission. :meth:`forget` drops an id.
    """

    def __init__(
        self,
        config: LivenessConfig | None = None,
        clock: Callable[[], float] | None = None,
        to_lonlat: Callable[[np.ndarray], np.ndarray] | None = None,
        known: Iterable[str] = (),
    ):
        import time

        self.config = config or LivenessConfig()
        self.clock = clock or time.monotonic
        self.to_lonlat = to_lonlat
        self.known = frozenset(known) | frozenset(self.config.expected_periods)
        self.sensors: dict[str, _Sensor] = {}
        # track id -> {sensor id: wall time of its latest update of that track}
        self.track_sensors: dict[int, dict[str, float]] = {}

    # -- input ----------------------------------------------------------------------

    def observe(
        self,
        sensor_id: str,
        kind: str = "",
        t: float | None = None,
        coverage: np.ndarray | None = None,
        updated: Iterable[int] | np.ndarray = (),
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Note a batch from ``sensor_id``; returns a ``sensor_back`` event if it was silent.

        Parameters
        ----------
        sensor_id, kind : str
        t : float, optional
            The batch's measurement time (carried in events, not used to decide).
        coverage : ndarray, shape (K, 2), float, optional
            The batch's coverage polygon in local metres (None: sees everything).
        updated : array of int64
            Track ids this batch's detections updated (``BatchResult.updated``).
        now : float, optional
            Arrival time on :attr:`clock` (now if omitted).
        """
        now = self.clock() if now is None else now
        s = self.sensors.get(sensor_id)
        if s is None:
            s = self.sensors[sensor_id] = _Sensor(
                kind=kind, last_wall=now, gaps=deque(maxlen=self.config.history)
            )
        else:
            gap = now - s.last_wall
            # Only gaps of a live sensor teach the period: the silence itself is not one.
            if s.silent_since is None and gap > 0:
                s.gaps.append(gap)
            s.last_wall = max(s.last_wall, now)
        s.kind = kind or s.kind
        s.last_t = t if t is not None else s.last_t
        if coverage is not None:
            s.coverage = np.asarray(coverage, dtype=float).reshape(-1, 2)
        for tid in np.asarray(updated, dtype=np.int64).ravel().tolist():
            self.track_sensors.setdefault(int(tid), {})[sensor_id] = now
        if s.silent_since is None:
            return []
        event = self._event(sensor_id, s, "sensor_back", "close", now)
        event["silent_for"] = now - s.silent_since
        event["reason"] = "sensor_back"
        s.silent_since, s.alert = None, None
        return [event]

    def forget(self, sensor_id: str) -> None:
        """Drop a sensor id (evicted by admission, or removed from the configuration)."""
        self.sensors.pop(sensor_id, None)

    def prune_tracks(self, live_ids: Iterable[int] | np.ndarray) -> None:
        """Forget the sensors of tracks no longer in the table (keeps memory bounded)."""
        keep = set(np.asarray(live_ids, dtype=np.int64).ravel().tolist())
        for tid in [t for t in self.track_sensors if t not in keep]:
            del self.track_sensors[tid]

    # -- decisions ------------------------------------------------------------------

    def expected_period(self, sensor_id: str) -> float | None:
        """Configured period, else the median learned gap once trusted, else None."""
        configured = self.config.expected_periods.get(sensor_id)
        if configured is not None:
            return float(configured)
        s = self.sensors.get(sensor_id)
        if s is None or len(s.gaps) < self.config.learn_batches:
            return None
        return float(np.median(np.fromiter(s.gaps, dtype=float)))

    def silence_limit(self, sensor_id: str) -> float:
        """Seconds without a batch after which ``sensor_id`` is silent."""
        cfg = self.config
        period = self.expected_period(sensor_id)
        if period is None:
            return cfg.max_silence
        return min(cfg.max_silence, max(cfg.min_silence, cfg.silent_periods * period))

    def check(self, now: float | None = None) -> list[dict[str, Any]]:
        """``sensor_silent`` events for the sensors that have just gone silent."""
        now = self.clock() if now is None else now
        events = []
        for sensor_id, s in self.sensors.items():
            if s.silent_since is not None or not self._watched(sensor_id, s):
                continue
            if now - s.last_wall > self.silence_limit(sensor_id):
                s.silent_since = now
                s.episode += 1
                event = self._event(sensor_id, s, "sensor_silent", "open", now)
                s.alert = event
                events.append(event)
        return events

    def _watched(self, sensor_id: str, s: _Sensor) -> bool:
        """Known to the service, or sending steadily enough that its period is learned."""
        return sensor_id in self.known or len(s.gaps) >= self.config.learn_batches

    def silent(self) -> set[str]:
        """Ids of the sensors now silent."""
        return {k for k, s in self.sensors.items() if s.silent_since is not None}

    def open_alerts(self) -> list[dict[str, Any]]:
        """The open ``sensor_silent`` alerts (for the service's open-alert snapshot)."""
        return [dict(s.alert) for s in self.sensors.values() if s.alert is not None]

    def status(self, now: float | None = None) -> dict[str, Any]:
        """Per-sensor last-seen age, expected period and state, for ``status``."""
        now = self.clock() if now is None else now
        # Silent sensors first, then the most recently seen: status stays one small
        # message (msgpack maps of at most 256 entries decode) whatever a flood did.
        shown = sorted(self.sensors.items(),
                       key=lambda kv: (kv[1].silent_since is None, now - kv[1].last_wall))
        return {
            "sensors": {
                k: {
                    "kind": s.kind,
                    "last_seen_s": now - s.last_wall,
                    "period_s": self.expected_period(k),
                    "silent": s.silent_since is not None,
                }
                for k, s in shown[:200]
            },
            "sensors_listed_of": len(self.sensors),
            "sensors_silent": sorted(self.silent()),
        }

    # -- events ---------------------------------------------------------------------

    def _event(
        self, sensor_id: str, s: _Sensor, kind: str, event: str, now: float
    ) -> dict[str, Any]:
        centre = None if s.coverage is None or not len(s.coverage) else s.coverage.mean(axis=0)
        lon = lat = None
        if centre is not None and self.to_lonlat is not None:
            lon, lat = (float(v) for v in self.to_lonlat(centre[None, :])[0])
        period = self.expected_period(sensor_id)
        last_seen = now - s.last_wall
        return {
            "alert_id": f"silent-{sensor_id}-{s.episode}",
            "kind": kind,
            "event": event,
            "severity": self.config.severity if kind == "sensor_silent" else "info",
            "zone": SYSTEM_ZONE,
            "sensor": sensor_id,
            "sensor_kind": s.kind,
            "track_id": None,
            "t": s.last_t,
            "last_seen_s": last_seen,
            "expected_period_s": period,
            "periods_missed": None if not period else math.floor(last_seen / period),
            "silence_limit_s": self.silence_limit(sensor_id),
            "position": None
            if centre is None
            else {"east": float(centre[0]), "north": float(centre[1]), "lon": lon, "lat": lat},
            "coverage": None if s.coverage is None else s.coverage.tolist(),
            "reason": None,  # as on every alert event: why it closed (set on close)
            # The evidence of a silence is the sensor itself and when it last spoke.
            "evidence": [sensor_id],
        }


def degraded_tracks(
    ids: np.ndarray,
    xy: np.ndarray,
    liveness: SensorLiveness,
    now: float | None = None,
) -> np.ndarray:
    """Which tracks only silent sensors have seen lately, inside one's coverage.

    A track is *degraded* when it lies inside the last known coverage of a silent
    sensor (or that sensor sees everything) and no live sensor updated it within
    ``config.track_memory`` seconds: nothing is watching it any more, so its coasting
    state is a guess and the picture must say so.

    Parameters
    ----------
    ids : ndarray, shape (N,), int64
        Track ids (a :class:`~fusion.tracking.tracker.TrackSnapshot`'s ``ids``).
    xy : ndarray, shape (N, 2) or (N, 4), float64
        Positions east/north in metres (the first two state columns).
    liveness : SensorLiveness
    now : float, optional
        Wall-clock time on ``liveness.clock``.

    Returns
    -------
    ndarray, shape (N,), bool
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    out = np.zeros(ids.shape[0], dtype=bool)
    silent = liveness.silent()
    if not silent or not ids.size:
        return out
    now = liveness.clock() if now is None else now
    memory = liveness.config.track_memory
    pts = np.asarray(xy, dtype=float)[:, :2]
    covered = np.zeros_like(out)
    for sensor_id in silent:
        coverage = liveness.sensors[sensor_id].coverage
        covered |= True if coverage is None else points_in_polygon(pts, coverage)
    for i in np.flatnonzero(covered):
        seen = liveness.track_sensors.get(int(ids[i]), {})
        recent = {k for k, when in seen.items() if now - when <= memory}
        # Seen by nobody lately, or only by sensors now silent: nothing is watching it.
        out[i] = not (recent - silent)
    return out


__all__ = ["KINDS", "LivenessConfig", "SYSTEM_ZONE", "SensorLiveness", "degraded_tracks"]
