"""Crash and restart with keys on: SIGKILL the service mid-run, start it again, and check
that the sensor publisher and the alert subscriber carry on by themselves and that no
open alert is lost or raised twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter

import numpy as np
import pytest

from fusion import DetectionBatch, encode_batch
from fusion.security import create_keys, load_keys
from fusion.service.alertlog import read_alert_log, rebuild_open_alerts
from fusion.service.client import AlertClient
from sensors.publisher import publish
from tests.sockets import DEADLINE, probe_until_counted

pytestmark = pytest.mark.e2e

def crossing(seconds, seq_shift=0):
    """A vehicle driving north at 20 m/s from 1.5 km south of the zone; one frame a second
    (frame k at t = k with sequence number k + seq_shift)."""
    rng = np.random.default_rng(3)
    noise = rng.normal(scale=10.0, size=(200, 2))
    for k in seconds:
        z = np.array([0.0, -1500.0 + 20.0 * k]) + noise[k]
        b = DetectionBatch.build("radar-1", "radar", k + seq_shift, float(k), [z],
                                 np.eye(2) * 100.0)
        yield float(k), b.topic, encode_batch(b)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Feed:
    """Messages for the publisher, handed out phase by phase (the publisher blocks in
    ``next()`` between phases, its socket and connection staying as they are)."""

    def __init__(self):
        self.phases: list[list | None] = []
        self.go = threading.Event()

    def push(self, phase: list | None) -> None:
        """Hand out these messages next (None: the end of the feed)."""
        self.phases.append(phase)
        self.go.set()

    def __iter__(self):
        while True:
            while not self.phases:
                if not self.go.wait(DEADLINE):
                    return
                self.go.clear()
            phase = self.phases.pop(0)
            if phase is None:
                return
            yield from phase


def test_sigkill_restart_keeps_open_alerts_and_clients_reconnect(
    tmp_path, context, scenario_file, status_watch, alert_collector
):
    keys = tmp_path / "keys"
    for name in ("server", "radar", "ops"):
        create_keys(keys, name)
    scenario = scenario_file("recovery")
    (tmp_path / "svc.toml").write_text(
        '[security]\nserver_key = "keys/server.key_secret"\nkeys_dir = "keys"\n'
        'subscribers = ["ops"]\n[security.sensors]\n"radar-1" = ["radar"]\n'
        '[service]\nstatus_interval = 0.1\ntrack_interval = 0.5\n'
    )
    det, pub, snap = (f"ipc://{tmp_path}/{n}.sock" for n in ("det", "pub", "snap"))
    alert_log = tmp_path / "alerts.log"
    args = [sys.executable, "-m", "replay.cli", "track", "--config", str(tmp_path / "svc.toml"),
            "--scenario", str(scenario), "--bind", det, "--publish", pub,
            "--snapshot", snap, "--alert-log", str(alert_log),
            "--checkpoint", str(tmp_path / "state.npz"), "--checkpoint-interval", "0.5",
            "--reorder-window", "0"]
    ops = load_keys(keys / "ops.key_secret", keys / "server.key")
    feed = Feed()
    pub_stop = threading.Event()
    publisher = threading.Thread(
        target=publish, daemon=True,
        kwargs=dict(ctx=context, messages=feed, endpoint=det, bind=False, speed=None,
                    stop=pub_stop, wait_subscribers=1, wait_timeout=DEADLINE, linger_ms=0,
                    curve=load_keys(keys / "radar.key_secret", keys / "server.key")),
    )
    logs: list = []

    def start_service():
        # stderr to a file: a pipe nobody reads can fill up and stall the service.
        logs.append(tmp_path / f"service-{len(logs)}.stderr")
        with open(logs[-1], "wb") as err:
            return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)

    procs = [start_service()]
    try:
        watch = status_watch(pub, ops)
        watch.next(DEADLINE)  # the service is up
        collector = alert_collector(AlertClient(pub, snap, context=context, curve=ops))
        client = collector.client
        # The publisher's XPUB waits for the service's subscription before it sends.
        publisher.start()
        # Phase 1: well before the zone; then wait for a checkpoint that holds it.
        feed.push(list(crossing(range(0, 40))))
        s = watch.wait(lambda s: s["batches"] >= 40)
        written = s["checkpoints"]["written"]
        watch.wait(lambda s: s["checkpoints"]["written"] > written)
        # Phase 2: the incursion opens after that checkpoint; kill as soon as the
        # subscriber has it.
        feed.push(list(crossing(range(40, 70))))
        collector.wait_for(
            lambda alerts: any(a["kind"] == "incursion" and a["event"] == "open" for a in alerts)
        )
        procs[0].kill()
        procs[0].wait(10)
        seen_before_kill = len(collector.alerts)
        # What was open at the kill, by the log (written before anything is published).
        open_log, _ = rebuild_open_alerts(alert_log)
        open_at_kill = {a["alert_id"] for a in open_log}
        incursion = next(a for a in open_at_kill if ":incursion:" in a)
        procs.append(start_service())
        s = watch.wait(lambda s: s.get("restored", {}).get("open_alerts") is not None
                       and s["uptime"] > 0)
        assert s["restored"]["open_alerts"] == len(open_at_kill)
        # The subscriber notices the new run and re-reads the open alerts: wait for the
        # re-read alerts themselves, from after the kill.
        collector.wait_for(lambda alerts: open_at_kill <= {
            a["alert_id"] for a in alerts[seen_before_kill:] if a.get("resync")})
        assert client.stats["restarts"] >= 1 and client.stats["resyncs"] >= 1
        # Phase 3: the same publisher socket, reconnected by ZeroMQ, drives on north;
        # first proof that the reconnection is up. The probes are radar-1's own
        # (empty) batches at the restored service's time, so the drive's sequence
        # numbers follow them.
        _, next_seq = probe_until_counted(
            lambda b: feed.push([(b.t, b.topic, encode_batch(b))]), watch, "radar-1",
            first_seq=70)
        feed.push(list(crossing(range(70, 140), seq_shift=next_seq - 70)))
        feed.push(None)
        watch.wait(lambda s: s["alerts"].get("incursion.close", 0) >= 1)
        collector.wait_for(lambda alerts: any(
            a["alert_id"] == incursion and a["event"] == "close" for a in alerts))
        publisher.join(DEADLINE)
        assert not publisher.is_alive()
        stop(procs[1])
        assert procs[1].wait(30) == 0
        alerts = collector.stop()
    finally:
        pub_stop.set()
        feed.push(None)
        for proc in procs:
            stop(proc)
        for path in logs:  # shown by pytest when the test failed
            print(f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}")
        if publisher.ident is not None:
            publisher.join(DEADLINE)
    events, report = read_alert_log(alert_log)
    assert report.ok
    opens = Counter(e["alert_id"] for e in events if e["event"] == "open")
    assert opens and max(opens.values()) == 1, opens  # nothing raised twice
    assert [e["event"] for e in events if e["alert_id"] == incursion][-1] == "close"
    assert sum(1 for a in alerts if a["alert_id"] == incursion and a["event"] == "close") == 1
