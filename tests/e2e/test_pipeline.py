"""End to end with real processes and sockets: sensors -> tracker service -> subscriber."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from fusion.service.client import AlertClient

pytestmark = pytest.mark.e2e

SCENARIO = """
name = "e2e"
seed = 5
duration = 150.0
truth_dt = 1.0
origin = [24.0, 45.0]
area = [[-6000.0, -5000.0], [6000.0, 5000.0]]

[[zones]]
name = "zone-e"
sides = ["north", "south"]
local = [[-5000.0, -400.0], [5000.0, -400.0], [5000.0, 400.0], [-5000.0, 400.0]]

[[targets]]
name = "crosser"
cls = "vehicle"
behaviour = "cross"
side = "south"
along = 0.5
offset = 900.0
speed = 12.0
birth = 0.0

[[targets]]
name = "patrol"
cls = "vehicle"
behaviour = "patrol"
side = "north"
along = [0.1, 0.4]
offset = 1500.0
speed = 8.0
birth = 0.0

[[sensors]]
id = "radar-1"
kind = "radar"
position = [0.0, -4000.0]
azimuth = 0.0
width = 120.0
range = [100.0, 9000.0]
rate = 1.0
pd = 0.95
clutter = 1.0
sigma_range = 10.0
sigma_bearing = 0.1
latency = [0.05, 0.1]
"""


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


def test_crossing_target_alerts_and_patrol_does_not(tmp_path, context):
    scenario = tmp_path / "e2e.toml"
    scenario.write_text(SCENARIO)
    det, pub, snap = (f"ipc://{tmp_path}/{n}.sock" for n in ("det", "pub", "snap"))
    service = subprocess.Popen(
        cli(
            "track",
            "--scenario",
            str(scenario),
            "--bind",
            det,
            "--publish",
            pub,
            "--snapshot",
            snap,
            "--alert-log",
            str(tmp_path / "alerts.log"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sensors = None
    alerts: list[dict] = []
    try:
        import zmq

        with context.socket(zmq.SUB) as watch:
            watch.setsockopt(zmq.LINGER, 0)
            watch.setsockopt(zmq.SUBSCRIBE, b"status")
            watch.connect(pub)
            assert watch.poll(60_000), "the service never published a status"
            watch.recv_multipart()
        done = threading.Event()
        client = AlertClient(pub, snap, context=context, stop=done)
        stream = iter(client)
        collector = threading.Thread(target=lambda: alerts.extend(stream), daemon=True)
        collector.start()
        sensors = subprocess.Popen(
            cli(
                "sensors",
                str(scenario),
                "--connect",
                det,
                "--speed",
                "30",
                "--truth-out",
                str(tmp_path / "truth.npz"),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert sensors.wait(120) == 0, sensors.stderr.read().decode()
        stop(service)
        out, err = service.communicate(timeout=30)
        assert service.returncode == 0, err.decode()[-2000:]
        done.set()
        collector.join(10)
        assert not collector.is_alive()
    finally:
        for proc in (sensors, service):
            if proc is not None:
                stop(proc)
    final = __import__("json").loads(out.decode().strip().splitlines()[-1])
    assert final["rejected_total"] == 0 and final["gaps"] == {}
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
