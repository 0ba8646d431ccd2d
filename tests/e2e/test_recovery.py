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
import zmq

from fusion import DetectionBatch, encode_batch
from fusion.messages import unpack_map
from fusion.security import create_keys, load_keys
from fusion.service.alertlog import read_alert_log
from fusion.service.client import AlertClient
from sensors.publisher import publish

pytestmark = pytest.mark.e2e

SCENARIO = """
name = "recovery"
seed = 1
duration = 150.0
origin = [24.0, 45.0]
area = [[-6000.0, -5000.0], [6000.0, 5000.0]]

[[zones]]
name = "zone-r"
sides = ["north", "south"]
local = [[-5000.0, -400.0], [5000.0, -400.0], [5000.0, 400.0], [-5000.0, 400.0]]
"""


def crossing(seqs):
    """A vehicle driving north at 20 m/s from 1.5 km south of the zone; one frame a second."""
    rng = np.random.default_rng(3)
    noise = rng.normal(scale=10.0, size=(200, 2))
    for k in seqs:
        z = np.array([0.0, -1500.0 + 20.0 * k]) + noise[k]
        b = DetectionBatch.build("radar-1", "radar", k, float(k), [z], np.eye(2) * 100.0)
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
        self.phases: list[list] = []
        self.go = threading.Event()

    def __iter__(self):
        while True:
            while not self.phases:
                if not self.go.wait(60):
                    return
                self.go.clear()
            phase = self.phases.pop(0)
            if phase is None:
                return
            yield from phase


def wait_status(sub, until, timeout=30.0):
    status = None
    for _ in range(1000):
        assert sub.poll(timeout * 1e3), f"no status; last {status}"
        status = unpack_map(sub.recv_multipart()[-1])
        if until(status):
            return status
    raise AssertionError(status)


def test_sigkill_restart_keeps_open_alerts_and_clients_reconnect(tmp_path, context):
    keys = tmp_path / "keys"
    for name in ("server", "radar", "ops"):
        create_keys(keys, name)
    (tmp_path / "scenario.toml").write_text(SCENARIO)
    (tmp_path / "svc.toml").write_text(
        '[security]\nserver_key = "keys/server.key_secret"\nkeys_dir = "keys"\n'
        'subscribers = ["ops"]\n[security.sensors]\n"radar-1" = ["radar"]\n'
        '[service]\nstatus_interval = 0.1\ntrack_interval = 0.5\n'
    )
    det, pub, snap = (f"ipc://{tmp_path}/{n}.sock" for n in ("det", "pub", "snap"))
    args = [sys.executable, "-m", "replay.cli", "track", "--config", str(tmp_path / "svc.toml"),
            "--scenario", str(tmp_path / "scenario.toml"), "--bind", det, "--publish", pub,
            "--snapshot", snap, "--alert-log", str(tmp_path / "alerts.log"),
            "--checkpoint", str(tmp_path / "state.npz"), "--checkpoint-interval", "0.5",
            "--reorder-window", "0"]
    ops = load_keys(keys / "ops.key_secret", keys / "server.key")
    feed = Feed()
    pub_stop = threading.Event()
    publisher = threading.Thread(
        target=publish, daemon=True,
        kwargs=dict(ctx=context, messages=feed, endpoint=det, bind=False, speed=None,
                    stop=pub_stop, wait_subscribers=1, wait_timeout=30, linger_ms=0,
                    curve=load_keys(keys / "radar.key_secret", keys / "server.key")),
    )
    alerts: list[dict] = []
    client_stop = threading.Event()
    client = AlertClient(pub, snap, context=context, stop=client_stop, curve=ops)
    collector = None
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    try:
        with context.socket(zmq.SUB) as watch:
            watch.setsockopt(zmq.LINGER, 0)
            ops.apply_client(watch)
            watch.setsockopt(zmq.SUBSCRIBE, b"status")
            watch.connect(pub)
            wait_status(watch, lambda s: True, 60)
            stream = iter(client)
            collector = threading.Thread(target=lambda: alerts.extend(stream), daemon=True)
            collector.start()
            publisher.start()
            # Phase 1: well before the zone; then wait for a checkpoint that holds it.
            feed.phases.append(list(crossing(range(0, 40))))
            feed.go.set()
            s = wait_status(watch, lambda s: s["batches"] >= 40)
            written = s["checkpoints"]["written"]
            wait_status(watch, lambda s: s["checkpoints"]["written"] > written)
            # Phase 2: the incursion opens after that checkpoint; kill as soon as it has.
            feed.phases.append(list(crossing(range(40, 70))))
            feed.go.set()
            wait_status(watch, lambda s: s["alerts"].get("incursion.open", 0) >= 1)
            procs[0].kill()
            procs[0].wait(10)
            open_at_kill = {e["alert_id"] for e in alerts if e["event"] == "open"} - {
                e["alert_id"] for e in alerts if e["event"] == "close"}
            assert any(":incursion:" in a for a in open_at_kill)
            procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            s = wait_status(watch, lambda s: s.get("restored", {}).get("open_alerts") is not None
                            and s["uptime"] > 0, 60)
            assert s["restored"]["open_alerts"] == len(open_at_kill)
            # The subscriber notices the new run and re-reads the open alerts.
            for _ in range(600):
                if client.stats["resyncs"] >= 1:
                    break
                wait_status(watch, lambda s: True)
            assert client.stats["restarts"] >= 1 and client.stats["resyncs"] >= 1
            # Phase 3: the same publisher socket, reconnected by ZeroMQ, drives on north.
            feed.phases.append(list(crossing(range(70, 140))))
            feed.phases.append(None)
            feed.go.set()
            s = wait_status(watch, lambda s: s["alerts"].get("incursion.close", 0) >= 1, 60)
        publisher.join(30)
        assert not publisher.is_alive()
        stop(procs[1])
        out, err = procs[1].communicate(timeout=30)
        assert procs[1].returncode == 0, err.decode()[-2000:]
    finally:
        pub_stop.set()
        client_stop.set()
        feed.go.set()
        for proc in procs:
            stop(proc)
        if collector is not None:
            collector.join(10)
    events, report = read_alert_log(tmp_path / "alerts.log")
    assert report.ok
    opens = Counter(e["alert_id"] for e in events if e["event"] == "open")
    assert opens and max(opens.values()) == 1, opens  # nothing raised twice
    incursion = next(a for a in open_at_kill if ":incursion:" in a)
    assert [e["event"] for e in events if e["alert_id"] == incursion][-1] == "close"
    resynced = {a["alert_id"] for a in alerts if a.get("resync")}
    assert incursion in resynced  # the subscriber got it back from the new service
    assert sum(1 for a in alerts if a["alert_id"] == incursion and a["event"] == "close") == 1
