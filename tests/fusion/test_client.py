"""AlertClient against a scripted service: argument checks, and when a resync counts."""

from __future__ import annotations

import pytest
import zmq

from fusion.messages import pack_map, unpack_map
from fusion.service.client import AlertClient
from tests.sockets import DEADLINE, AlertCollector


def test_unknown_min_severity_names_the_valid_levels(context):
    with pytest.raises(ValueError, match="'urgent'.*info, low, medium, high, critical"):
        AlertClient("ipc:///nonexistent", min_severity="urgent", context=context)
    ranks = [AlertClient("ipc:///nonexistent", min_severity=level, context=context).min_rank
             for level in ("info", "low", "medium", "high", "critical")]
    assert ranks == sorted(ranks) and len(set(ranks)) == 5


class ScriptedService:
    """The service's PUB (an XPUB, so the test sees the client subscribe) and ROUTER,
    answered by hand."""

    def __init__(self, context, ipc_endpoint):
        self.publish, self.snapshot = ipc_endpoint("pub"), ipc_endpoint("snap")
        self.pub = context.socket(zmq.XPUB)
        self.router = context.socket(zmq.ROUTER)
        for sock in (self.pub, self.router):
            sock.setsockopt(zmq.LINGER, 0)
        self.pub.bind(self.publish)
        self.router.bind(self.snapshot)

    def subscriptions(self, n):
        topics = set()
        while len(topics) < n:
            assert self.pub.poll(DEADLINE * 1e3), f"subscribed only to {topics}"
            frame = self.pub.recv()
            if frame[:1] == b"\x01":
                topics.add(frame[1:])
        return topics

    def request(self):
        """The identity of the next snapshot request."""
        assert self.router.poll(DEADLINE * 1e3), "no snapshot request"
        identity, *_, body = self.router.recv_multipart()
        assert unpack_map(body)["type"] == "open_alerts"
        return identity

    def reply(self, identity, run, alerts=()):
        self.router.send_multipart([identity, b"", pack_map(
            {"type": "open_alerts", "alerts": list(alerts), "run": run, "alert_seq": {}})])

    def status(self, run, uptime):
        self.pub.send_multipart([b"status", pack_map(
            {"type": "status", "run": run, "uptime": uptime, "status_interval": 60.0,
             "alert_seq": {}})])

    def close(self):
        self.pub.close(linger=0)
        self.router.close(linger=0)


def test_a_resync_counts_only_once_its_snapshot_has_arrived(context, ipc_endpoint):
    service = ScriptedService(context, ipc_endpoint)
    client = AlertClient(service.publish, service.snapshot, snapshot_timeout=1.0,
                         context=context)
    collector = AlertCollector(client).start(wait_live=False)
    try:
        service.reply(service.request(), "run-a")  # the initial snapshot: nothing open
        assert service.subscriptions(2) == {b"alert.", b"status"}
        service.status("run-a", 10.0)
        assert client.live.wait(DEADLINE)
        # A new run: the client asks for the open alerts again. Unanswered, it gives up
        # after snapshot_timeout, so that request must not count as a resync...
        service.status("run-b", 0.5)
        service.request()
        assert client.stats["restarts"] == 1 and client.stats["resyncs"] == 0
        service.status("run-b", 0.6)
        retry = service.request()  # ...and it asks again at the next status
        assert client.stats["resyncs"] == 0
        alert = {"alert_id": "zone-t:incursion:7:0", "kind": "incursion", "event": "open",
                 "zone": "zone-t", "severity": "high"}
        service.reply(retry, "run-b", [alert])
        got = collector.wait_for(lambda alerts: any(a.get("resync") for a in alerts))
        assert [a["alert_id"] for a in got if a.get("resync")] == [alert["alert_id"]]
        assert client.stats["resyncs"] == 1
    finally:
        collector.stop()
        service.close()
