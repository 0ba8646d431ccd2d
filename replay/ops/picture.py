"""The live operations picture: what the map, the GIS endpoints, CoT and metrics show.

:class:`OpsPicture` is fed the service's PUB messages (``track.update``, ``alert.*``,
``status``, ``heartbeat``) and the open-alert snapshot, and keeps what an operator
needs: the confirmed tracks with short history tails, the open alerts and the last
closed ones, the newest status, and whether the service is still heard. No socket
here (the feed in :mod:`replay.ops.feed` drives it); every collection is bounded.

Times and places: messages from a service that already stamps UTC time and lon/lat
(:mod:`fusion.service.stamps`) are used as they are; older ones are stamped here with
the same helper, so the picture is whole either way.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from fusion.messages import CLASSES
from fusion.service.stamps import Stamper
from replay.ops.layers import Layers

# Severity order, highest first, for the alert list (fusion.alerting.rules.SEVERITIES).
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


class OpsPicture:
    """Tracks, alerts, status and service liveness, built from the PUB stream.

    Parameters
    ----------
    layers : Layers
        Zones, sensors and the local frame.
    tail : int
        Positions kept per track for its history tail.
    closed_keep : int
        Closed alerts kept for the list.
    silence : float, optional
        Seconds without any message from the service after which it is reported
        silent; by default three of its status intervals, at least 5 s.
    clock : callable
        Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        layers: Layers,
        tail: int = 20,
        closed_keep: int = 50,
        silence: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.layers = layers
        self.stamper = Stamper(layers.frame)
        self.tail = tail
        self.clock = clock
        self.silence = silence
        self.started = clock()
        self.heard_at: float | None = None
        self.silent_episodes = 0
        self._was_silent = False
        self.status: dict[str, Any] = {}
        self.tracks: list[dict[str, Any]] = []
        self.tracks_t: float | None = None
        self.tracks_times: dict[str, Any] = self.stamper.times(None)
        self.tails: dict[int, deque[tuple[float, float]]] = {}
        self.open: dict[str, dict[str, Any]] = {}
        self.closed: deque[dict[str, Any]] = deque(maxlen=closed_keep)
        self.alert_events = 0
        self.version = 0
        self.run: str | None = None

    # -- input ----------------------------------------------------------------------

    def on_message(self, topic: bytes, message: dict[str, Any]) -> bool:
        """Take one decoded PUB message; True when it changed the alert list."""
        self.heard_at = self.clock()
        self.version += 1
        if topic == b"track.update":
            self._on_tracks(message)
        elif topic.startswith(b"alert."):
            self.on_alert(message)
            return True
        elif topic == b"status":
            if self.run is not None and message.get("run") not in (None, self.run):
                self.tails.clear()  # a restarted service numbers its tracks anew
            self.run = message.get("run", self.run)
            self.status = message
        return False

    def on_alert(self, event: dict[str, Any], snapshot: bool = False) -> None:
        """Open, update or close one alert (also for snapshot alerts)."""
        event = dict(event)
        event.pop("v", None)
        event.pop("type", None)
        if event.get("time_utc") is None:
            self.stamper.stamp_alert(event)
        event["received_at"] = self.clock()
        alert_id = str(event.get("alert_id"))
        self.alert_events += 0 if snapshot else 1
        if event.get("event") == "close":
            opened = self.open.pop(alert_id, None)
            if opened is not None:
                event.setdefault("opened_time_utc", opened.get("time_utc"))
            self.closed.appendleft(event)
        else:
            self.open[alert_id] = event
        self.version += 1

    def load_snapshot(self, alerts: list[dict[str, Any]]) -> None:
        """Replace the open set with the service's open-alert snapshot."""
        self.open.clear()
        for event in alerts:
            self.on_alert(event, snapshot=True)

    def _on_tracks(self, msg: dict[str, Any]) -> None:
        n = int(msg.get("n") or 0)
        ids = np.frombuffer(msg["ids"], "<i8").reshape(n) if n else np.zeros(0, np.int64)
        x = np.frombuffer(msg["x"], "<f8").reshape(n, 4) if n else np.zeros((0, 4))
        if msg.get("lonlat") is not None and len(msg["lonlat"]) == 16 * n:
            lonlat = np.frombuffer(msg["lonlat"], "<f8").reshape(n, 2)
        else:  # a service that does not stamp yet: convert here, once per picture
            lonlat = self.layers.frame.to_lonlat(x[:, :2]) if n else np.zeros((0, 2))
        cls = np.frombuffer(msg["cls"], "u1").reshape(n) if n else np.zeros(0, "u1")
        conf = np.frombuffer(msg["conf"], "<f4").reshape(n) if n else np.zeros(0, "<f4")
        degraded = (
            np.frombuffer(msg["degraded"], "u1").astype(bool)
            if msg.get("degraded") is not None and len(msg["degraded"]) == n
            else np.zeros(n, bool)
        )
        t = msg.get("t")
        times = self.stamper.times(t) if msg.get("time_utc") is None else {
            "t_epoch": msg.get("t_epoch"), "time_utc": msg.get("time_utc"),
            "time_basis": msg.get("time_basis")}
        tracks = []
        for i in range(n):
            tid = int(ids[i])
            lon, lat = float(lonlat[i, 0]), float(lonlat[i, 1])
            tail = self.tails.get(tid)
            if tail is None:
                tail = self.tails[tid] = deque(maxlen=self.tail)
            if not tail or tail[-1] != (lon, lat):
                tail.append((lon, lat))
            vx, vy = float(x[i, 2]), float(x[i, 3])
            tracks.append(
                {
                    "id": tid,
                    "lon": lon,
                    "lat": lat,
                    "east": float(x[i, 0]),
                    "north": float(x[i, 1]),
                    "v_east": vx,
                    "v_north": vy,
                    "speed": math.hypot(vx, vy),
                    # compass heading, degrees clockwise from north
                    "heading": math.degrees(math.atan2(vx, vy)) % 360.0,
                    "cls": CLASSES[int(cls[i])] if int(cls[i]) < len(CLASSES) else "unknown",
                    "conf": float(conf[i]),
                    "degraded": bool(degraded[i]),
                    "tail": [list(p) for p in tail],
                    **times,
                }
            )
        live = set(ids.tolist())
        for tid in [k for k in self.tails if k not in live]:
            del self.tails[tid]  # bounded: tails only for tracks in the picture
        self.tracks = tracks
        self.tracks_t = None if t is None else float(t)
        # The picture's clock is the service's stamp of this picture: the service
        # places scenario seconds on the wall clock at its own first message, so a
        # stamp made here would disagree with every alert's time_utc.
        self.tracks_times = times

    # -- output ---------------------------------------------------------------------

    def silence_limit(self) -> float:
        """Seconds without a message after which the service counts as silent."""
        if self.silence is not None:
            return self.silence
        interval = self.status.get("status_interval")
        interval = float(interval) if isinstance(interval, int | float) else 2.0
        return max(5.0, 3.0 * interval)

    def service_state(self) -> dict[str, Any]:
        """``{"state": "waiting" | "live" | "silent" | "stopped", "last_heard_s", ...}``."""
        now = self.clock()
        if self.heard_at is None:
            state = "waiting" if now - self.started <= self.silence_limit() else "silent"
            age = None
        else:
            age = now - self.heard_at
            state = "silent" if age > self.silence_limit() else "live"
            if self.status.get("final") and state == "silent":
                state = "stopped"
        silent = state == "silent"
        if silent and not self._was_silent:
            self.silent_episodes += 1
        self._was_silent = silent
        return {
            "state": state,
            "last_heard_s": age,
            "silence_limit_s": self.silence_limit(),
            "run": self.run,
        }

    def open_alerts(self) -> list[dict[str, Any]]:
        """Open alerts, most severe first, then newest first."""
        return sorted(
            self.open.values(),
            key=lambda a: (SEVERITY_ORDER.get(str(a.get("severity")), 9),
                           -float(a.get("t_epoch") or 0.0)),
        )

    def to_json(self) -> dict[str, Any]:
        """The whole picture as JSON-ready data, as the page receives it."""
        st = self.status
        return {
            "service": self.service_state(),
            "t": self.tracks_t,
            **self.tracks_times,
            "tracks": self.tracks,
            "alerts": [_plain(a) for a in self.open_alerts()],
            "closed": [_plain(a) for a in self.closed],
            "status": {
                k: st.get(k)
                for k in ("batches", "detections", "rejected_total", "late_batches",
                          "live_tracks", "confirmed_tracks", "open_alerts", "latency_ms",
                          "sensors_silent")
                if k in st
            },
        }


def _plain(event: dict[str, Any]) -> dict[str, Any]:
    """An alert as JSON-ready data (bytes and numpy scalars do not reach the page)."""
    out: dict[str, Any] = {}
    for k, v in event.items():
        if isinstance(v, bytes):
            continue
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out
