"""End to end with real processes and sockets: sensors -> tracker service -> subscriber."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from fusion.service.alertlog import read_alert_log
from fusion.service.client import AlertClient

pytestmark = pytest.mark.e2e

def cli(*args):
    return [sys.executable, "-m", "replay.cli", *args]


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_crossing_target_alerts_and_patrol_does_not(
    tmp_path, context, scenario_file, status_watch, alert_collector
):
    scenario = scenario_file("e2e")
    det, pub, snap = (f"ipc://{tmp_path}/{n}.sock" for n in ("det", "pub", "snap"))
    alert_log = tmp_path / "alerts.log"
    logs: list = []

    def spawn(name, *args, stdout=subprocess.DEVNULL):
        # stderr to a file: a pipe nobody reads while the process runs can fill up and
        # stall it. Shown by pytest (it is printed) when the test fails.
        logs.append(tmp_path / f"{name}.stderr")
        with open(logs[-1], "wb") as err:
            return subprocess.Popen(cli(*args), stdout=stdout, stderr=err)

    service = spawn("service", "track", "--scenario", str(scenario), "--bind", det,
                    "--publish", pub, "--snapshot", snap, "--alert-log", str(alert_log),
                    stdout=subprocess.PIPE)  # one line at the end: the final status
    sensors = None
    try:
        status_watch(pub).next(60)  # the service is up
        # Live before the first detection is sent, so no alert can be missed.
        collector = alert_collector(AlertClient(pub, snap, context=context))
        # The simulator's XPUB waits for the service to subscribe before it sends.
        sensors = spawn("sensors", "sensors", str(scenario), "--connect", det, "--speed", "30",
                        "--wait-timeout", "60", "--truth-out", str(tmp_path / "truth.npz"))
        assert sensors.wait(120) == 0
        stop(service)
        out, _ = service.communicate(timeout=30)
        assert service.returncode == 0
        logged, report = read_alert_log(alert_log)
        assert report.ok and logged
        # Wait for what is asserted: every alert the service logged has reached the
        # subscriber (or was already in a snapshot it re-read: counted as duplicate).
        client = collector.client
        collector.wait_for(
            lambda got: sum(not a.get("snapshot") for a in got) + client.stats["duplicates"]
            >= len(logged)
        )
        delivered = [a for a in collector.stop() if not a.get("snapshot")]
    finally:
        for proc in (sensors, service):
            if proc is not None:
                stop(proc)
        for path in logs:
            print(f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}")
    assert client.stats["gaps"] == 0
    assert len(delivered) + client.stats["duplicates"] == len(logged)
    logged_ids = iter((e["alert_id"], e["event"], e["t"]) for e in logged)
    assert all((a["alert_id"], a["event"], a["t"]) in logged_ids for a in delivered)  # in order
    final = json.loads(out.decode().strip().splitlines()[-1])
    assert final["rejected_total"] == 0 and final["gaps"] == {}
    alerts = logged  # the same events as delivered, in order, none missing
    opened = [a for a in alerts if a["event"] == "open"]
    kinds = [a["kind"] for a in opened]
    assert "predicted_incursion" in kinds and "incursion" in kinds, kinds
    assert kinds.index("predicted_incursion") < kinds.index("incursion")
    incursion = next(a for a in opened if a["kind"] == "incursion")
    assert incursion["zone"] == "zone-e" and incursion["side"] == "south"
    assert incursion["evidence"] == ["radar-1"]
    assert incursion["cls"] in ("unknown", "vehicle")
    # Every alert is about the crossing vehicle (south of or in the zone), none about
    # the patrol 1.5 km north of it.
    assert {a["track_id"] for a in alerts} == {incursion["track_id"]}
    assert all(a["position"]["north"] < 900.0 for a in alerts)
