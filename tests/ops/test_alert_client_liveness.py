"""``AlertClient`` says loudly when the service stops talking, and when it is back
(issue 15: a killed service made ``bufferzone alerts`` print nothing)."""

from __future__ import annotations

import logging
import queue
import threading
import time

from fusion.service.client import AlertClient

DEADLINE = 20.0


def test_alert_client_reports_a_silent_service_then_resyncs_when_it_is_back(fake_service,
                                                                            ops_context,
                                                                            caplog):
    stop = threading.Event()
    client = AlertClient(fake_service.pub_endpoint, fake_service.snap_endpoint,
                         context=ops_context, stop=stop)
    alerts: queue.Queue[dict] = queue.Queue()

    def consume() -> None:
        for alert in client:
            alerts.put(alert)

    thread = threading.Thread(target=consume, daemon=True)
    caplog.set_level(logging.WARNING, logger="fusion.service.client")
    thread.start()
    try:
        fake_service.wait_subscribers(need={b"alert.": 1, b"status": 1}, timeout=DEADLINE)
        fake_service.status()  # status_interval 0.2 s: silent after 0.6 s without one
        assert client.live.wait(DEADLINE)
        # the service stops: no status any more
        assert client.silent.wait(DEADLINE), "the client never said the service was silent"
        assert client.stats["heartbeats_missed"] == 1
        warning = next(r for r in caplog.records if "SERVICE SILENT" in r.getMessage())
        assert warning.levelno == logging.WARNING
        assert fake_service.pub_endpoint in warning.getMessage()
        # an alert opened while nothing was heard (only the snapshot has it); then the
        # service talks again: the client says so and reads the open set again
        fake_service.open["zone-a:incursion:3:0"] = {
            "alert_id": "zone-a:incursion:3:0", "kind": "incursion", "event": "open",
            "zone": "zone-a", "severity": "high", "run": fake_service.run, "seq": 1}
        fake_service.status()
        deadline = time.monotonic() + DEADLINE
        while True:
            alert = alerts.get(timeout=max(0.0, deadline - time.monotonic()))
            if alert.get("resync"):
                break
        assert alert["alert_id"] == "zone-a:incursion:3:0" and alert["snapshot"] is True
        assert not client.silent.is_set() and client.stats["resyncs"] == 1
        assert any("hearing from" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert not thread.is_alive()
