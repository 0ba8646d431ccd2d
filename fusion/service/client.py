"""A small iterable client for the alert stream.

    for alert in AlertClient("tcp://127.0.0.1:5560", "tcp://127.0.0.1:5561", zones=["zone-a"]):
        print(alert["kind"], alert["event"], alert["track_id"])

It subscribes first and then asks the service for the currently open alerts (the
ZeroMQ guide's Clone pattern), so a late subscriber starts with the open alerts and
misses nothing that happens between the two. Snapshot alerts come first, marked
``"snapshot": True``.

Gaps and restarts
-----------------
Every alert carries ``run`` (random per service start) and ``seq`` (per topic), the
snapshot reply and every ``status`` carry the newest ``alert_seq`` per topic. The
client uses them to:

- drop alerts already contained in the snapshot (``seq`` not above the snapshot's);
- count a *gap* when ``seq`` jumps, or when ``status`` names a newer ``seq`` on a
  subscribed topic than was received (a PUB high-water-mark drop, which the service
  cannot see; counted here, per subscriber, in :attr:`AlertClient.stats`);
- see a *restart* when ``run`` changes (or ``uptime`` goes backwards), and a missed
  heartbeat when no ``status`` came for three status intervals.

After any of these it asks for the snapshot again (yielding it with
``"resync": True``), so a subscriber that lived through a service crash ends with the
right open alerts. ZeroMQ reconnects the SUB socket by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from fusion.alerting.rules import SEVERITIES, severity_rank
from fusion.messages import WireError, pack_map, unpack_map
from fusion.security import CurveKeys

log = logging.getLogger(__name__)


class AlertClient:
    """Iterate over alert events, filtered by zone, kind and minimum severity.

    Parameters
    ----------
    publish : str
        The service's PUB endpoint.
    snapshot : str, optional
        The service's snapshot (ROUTER) endpoint; without it no open-alert snapshot.
    zones, kinds : iterable of str, optional
        Only these zones / alert kinds (all when omitted).
    min_severity : str, optional
        Only alerts at or above this level (info < low < medium < high < critical).
    timeout : float, optional
        Stop iterating after this many seconds without an alert (None: never).
    snapshot_timeout : float
        Seconds to wait for the snapshot reply.
    context : zmq.Context, optional
    stop : threading.Event, optional
        Set it (from another thread) to end the iteration within ~100 ms.
    curve : CurveKeys, optional
        This client's key pair and the service's public key, for a secured service.

    Attributes
    ----------
    stats : dict
        ``alerts`` yielded, ``rejected`` undecodable messages, ``snapshot`` alerts from
        snapshots, ``gaps`` alert messages missed, ``restarts`` service restarts seen,
        ``heartbeats_missed``, ``resyncs`` snapshots re-read (counted once the reply
        has arrived and been applied), ``duplicates`` alerts dropped as already in a
        snapshot.
    status : dict or None
        The newest ``status`` message.
    live : threading.Event
        Set when the first ``status`` arrives while iterating: the subscription is in
        place at the service (so no later alert is lost to a slow join) and the
        initial snapshot, if any, has been handed out.

    Raises
    ------
    ValueError
        If ``min_severity`` is not one of the severity levels.
    """

    def __init__(
        self,
        publish: str,
        snapshot: str | None = None,
        zones: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        min_severity: str | None = None,
        timeout: float | None = None,
        snapshot_timeout: float = 5.0,
        context: zmq.Context | None = None,
        stop: threading.Event | None = None,
        curve: CurveKeys | None = None,
    ):
        self.publish = publish
        self.snapshot = snapshot
        self.zones = frozenset(zones) if zones else None
        self.kinds = frozenset(kinds) if kinds else None
        if min_severity and min_severity not in SEVERITIES:
            raise ValueError(
                f"min_severity {min_severity!r} is not a severity; use one of "
                + ", ".join(SEVERITIES)
            )
        self.min_rank = severity_rank(min_severity) if min_severity else None
        self.timeout = timeout
        self.snapshot_timeout = snapshot_timeout
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.stats = {
            "alerts": 0, "rejected": 0, "snapshot": 0, "gaps": 0, "restarts": 0,
            "heartbeats_missed": 0, "resyncs": 0, "duplicates": 0,
        }
        self.status: dict[str, Any] | None = None
        self.live = threading.Event()
        # Set while the service's status heartbeat is missing (and logged loudly).
        self.silent = threading.Event()
        self.stop = stop or threading.Event()
        self.curve = curve
        self._run: str | None = None
        self._seq: dict[str, int] = {}
        self._synced = False

    def _subscribed(self, topic: str) -> bool:
        return any(topic.encode().startswith(t) for t in self._topics())

    def _wanted(self, alert: dict[str, Any]) -> bool:
        if self.zones is not None and alert.get("zone") not in self.zones:
            return False
        if self.kinds is not None and alert.get("kind") not in self.kinds:
            return False
        if self.min_rank is not None:
            try:
                return severity_rank(alert.get("severity", "info")) >= self.min_rank
            except ValueError:
                return False
        return True

    def _topics(self) -> list[bytes]:
        # Narrow the subscription on the wire where the topic says enough.
        if self.zones and self.kinds:
            return [f"alert.{z}.{k}".encode() for z in self.zones for k in self.kinds]
        if self.zones:
            return [f"alert.{z}.".encode() for z in self.zones]
        return [b"alert."]

    def _fetch_snapshot(self) -> list[dict[str, Any]]:
        if self.snapshot is None:
            return []
        with self.context.socket(zmq.DEALER) as req:
            req.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                self.curve.apply_client(req)
            req.connect(self.snapshot)
            req.send_multipart([b"", pack_map({"type": "open_alerts"})])
            if not req.poll(int(self.snapshot_timeout * 1e3)):
                raise TimeoutError(
                    f"no open-alert snapshot from {self.snapshot} in {self.snapshot_timeout:g} s"
                )
            reply = unpack_map(req.recv_multipart()[-1])
        if reply.get("type") != "open_alerts":
            raise WireError("request", f"snapshot request refused: {reply.get('message')}")
        if isinstance(reply.get("alert_seq"), dict):
            # Alerts up to these numbers are in the snapshot; later ones are news.
            self._seq = {str(k): int(v) for k, v in reply["alert_seq"].items()}
            self._run = reply.get("run", self._run)
            self._synced = True
        return list(reply.get("alerts", []))

    def _snapshot_alerts(self, resync: bool) -> Iterator[dict[str, Any]]:
        alerts = self._fetch_snapshot()
        # Counted only now that the reply is in and applied: a request that timed out
        # (the service not back yet) is no resync, and is asked again.
        if resync:
            self.stats["resyncs"] += 1
        for alert in alerts:
            if self._wanted(alert):
                self.stats["snapshot"] += 1
                yield {**alert, "snapshot": True, **({"resync": True} if resync else {})}

    def _check_status(self, status: dict[str, Any]) -> bool:
        """Note a status message; True if it shows a restart or lost alerts."""
        previous, self.status = self.status, status
        run = status.get("run")
        restarted = (run is not None and self._run is not None and run != self._run) or (
            previous is not None
            and isinstance(status.get("uptime"), float | int)
            and isinstance(previous.get("uptime"), float | int)
            and status["uptime"] < previous["uptime"]
        )
        if restarted:
            self.stats["restarts"] += 1
            self._run, self._seq, self._synced = run, {}, False
            return True
        if run is not None:
            self._run = run
        lost = False
        for topic, seq in (status.get("alert_seq") or {}).items():
            topic = str(topic)
            if not self._subscribed(topic) or not isinstance(seq, int):
                continue
            have = self._seq.get(topic)
            if have is None and not self._synced:
                self._seq[topic] = seq  # first sight without a snapshot: a baseline
                continue
            have = have or 0
            if seq > have:
                self.stats["gaps"] += seq - have
                self._seq[topic] = seq
                lost = True
        return lost

    def _check_alert(self, topic: str, message: dict[str, Any]) -> str:
        """'ok', 'duplicate', or 'resync' (a gap or a new run) for an alert message."""
        # Read, not removed: run and seq stay on the yielded alert (alerts --json).
        run, seq = message.get("run"), message.get("seq")
        if not isinstance(seq, int):
            return "ok"  # an older service without sequence numbers
        if run is not None and self._run is not None and run != self._run:
            self.stats["restarts"] += 1
            self._run, self._seq, self._synced = run, {topic: seq}, False
            return "resync"
        self._run = run if run is not None else self._run
        have = self._seq.get(topic)
        if have is not None and seq <= have:
            self.stats["duplicates"] += 1
            return "duplicate"
        self._seq[topic] = seq
        if have is not None and seq > have + 1:
            self.stats["gaps"] += seq - have - 1
            return "resync"
        return "ok"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            with self.context.socket(zmq.SUB) as sub:
                sub.setsockopt(zmq.LINGER, 0)
                if self.curve is not None:
                    self.curve.apply_client(sub)
                for topic in self._topics():
                    sub.setsockopt(zmq.SUBSCRIBE, topic)
                sub.setsockopt(zmq.SUBSCRIBE, b"status")
                sub.connect(self.publish)
                if self.snapshot:
                    yield from self._snapshot_alerts(resync=False)
                last = last_status = time.monotonic()
                resync_pending = False
                while not self.stop.is_set():
                    if not sub.poll(100):
                        now = time.monotonic()
                        interval = (self.status or {}).get("status_interval")
                        if (
                            isinstance(interval, float | int)
                            and not resync_pending
                            and now - last_status > 3 * interval
                        ):
                            # The service went quiet: whatever happened meanwhile, the
                            # open set is re-read once it talks again.
                            self.stats["heartbeats_missed"] += 1
                            resync_pending = True
                            log.warning(
                                "SERVICE SILENT: no status from %s for %.0f s; alerts "
                                "published meanwhile may be missed (the open set is "
                                "re-read when it is back)", self.publish, now - last_status,
                            )
                            # Set after the warning: whoever waits on it finds it said.
                            self.silent.set()
                        if self.timeout is not None and now - last > self.timeout:
                            return
                        continue
                    topic, *rest = sub.recv_multipart()
                    try:
                        if len(rest) != 1:
                            raise WireError("frames", "expected [topic, payload]")
                        message = unpack_map(rest[0])
                    except WireError:
                        self.stats["rejected"] += 1
                        continue
                    if topic == b"status":
                        last_status = time.monotonic()
                        if self.silent.is_set():
                            log.warning("hearing from %s again", self.publish)
                            self.silent.clear()
                        # The SUB sent every subscription in one go when it connected,
                        # the alert topics ahead of "status" (they sort first), so a
                        # status here means the alert topics are in place as well.
                        self.live.set()
                        if self._check_status(message):
                            resync_pending = True
                        if resync_pending and self.snapshot:
                            try:
                                yield from self._snapshot_alerts(resync=True)
                                resync_pending = False
                            except (TimeoutError, WireError):
                                pass  # the service is not answering yet; next status
                        elif resync_pending:
                            resync_pending = False
                        continue
                    message.pop("v", None)
                    message.pop("type", None)
                    verdict = self._check_alert(topic.decode("ascii", "replace"), message)
                    if verdict == "duplicate":
                        continue
                    if verdict == "resync":
                        resync_pending = True
                    if self._wanted(message):
                        last = time.monotonic()
                        self.stats["alerts"] += 1
                        yield message
        finally:
            if self._own_context:
                self.context.term()
