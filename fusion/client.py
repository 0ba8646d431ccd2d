"""A small iterable client for the alert stream.

    for alert in AlertClient("tcp://127.0.0.1:5560", "tcp://127.0.0.1:5561", zones=["zone-a"]):
        print(alert["kind"], alert["event"], alert["track_id"])

It subscribes first and then asks the service for the currently open alerts (the
ZeroMQ guide's Clone pattern), so a late subscriber starts with the open alerts and
misses nothing that happens between the two. Snapshot alerts come first, marked
``"snapshot": True``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from fusion.messages import WireError, pack_map, unpack_map
from fusion.rules import severity_rank


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
    ):
        self.publish = publish
        self.snapshot = snapshot
        self.zones = frozenset(zones) if zones else None
        self.kinds = frozenset(kinds) if kinds else None
        self.min_rank = severity_rank(min_severity) if min_severity else None
        self.timeout = timeout
        self.snapshot_timeout = snapshot_timeout
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.stats = {"alerts": 0, "rejected": 0, "snapshot": 0}
        self.status: dict[str, Any] | None = None
        self.stop = stop or threading.Event()

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
        with self.context.socket(zmq.DEALER) as req:
            req.setsockopt(zmq.LINGER, 0)
            req.connect(self.snapshot)
            req.send_multipart([b"", pack_map({"type": "open_alerts"})])
            if not req.poll(self.snapshot_timeout * 1e3):
                raise TimeoutError(
                    f"no open-alert snapshot from {self.snapshot} in {self.snapshot_timeout:g} s"
                )
            reply = unpack_map(req.recv_multipart()[-1])
        if reply.get("type") != "open_alerts":
            raise WireError("request", f"snapshot request refused: {reply.get('message')}")
        return list(reply.get("alerts", []))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            with self.context.socket(zmq.SUB) as sub:
                sub.setsockopt(zmq.LINGER, 0)
                for topic in self._topics():
                    sub.setsockopt(zmq.SUBSCRIBE, topic)
                sub.setsockopt(zmq.SUBSCRIBE, b"status")
                sub.connect(self.publish)
                if self.snapshot:
                    for alert in self._fetch_snapshot():
                        if self._wanted(alert):
                            self.stats["snapshot"] += 1
                            yield {**alert, "snapshot": True}
                last = time.monotonic()
                while not self.stop.is_set():
                    if not sub.poll(100):
                        if self.timeout is not None and time.monotonic() - last > self.timeout:
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
                        self.status = message
                        continue
                    message.pop("v", None)
                    message.pop("type", None)
                    if self._wanted(message):
                        last = time.monotonic()
                        self.stats["alerts"] += 1
                        yield message
        finally:
            if self._own_context:
                self.context.term()
