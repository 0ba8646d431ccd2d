"""``bufferzone export`` on a result file, and ``bufferzone cot`` / ``ui`` as processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET

import numpy as np
from lxml import etree

from fusion.messages import pack_map
from replay.cli import main
from replay.offline import encode_tracks
from replay.recording import RecordingWriter
from tests.ops.conftest import FRAME, ORIGIN, check_feature_collection, make_layers
from tests.pipes import PipeLines

DEADLINE = 20.0


def _result(path):
    layers = make_layers()
    meta = {"kind": "result", "scenario": {"name": "t", "source": "<memory>",
                                           "origin": list(ORIGIN), "zones": layers.zones}}
    with RecordingWriter(path, meta, t_start=0.0) as rec:
        for k in range(5):
            x = np.array([[100.0 * k, -500.0 + 50 * k, 10.0, 5.0],
                          [-300.0, 200.0 * k, 0.0, 20.0]])
            ids = np.array([1, 2]) if k < 4 else np.array([1])
            rec.write(float(k), b"track.update",
                      encode_tracks(float(k), ids, x[: len(ids)], np.tile(np.eye(4), (len(ids),
                                    1, 1)), np.array([2, 1][: len(ids)], "u1")))
        for event in ("open", "update", "close"):
            rec.write(2.0, b"alert.zone-a.incursion", pack_map({
                "type": "alert", "alert_id": "zone-a:incursion:2:0", "kind": "incursion",
                "event": event, "zone": "zone-a", "track_id": 2, "t": 2.0 + (event != "open"),
                "position": {"east": -300.0, "north": 400.0, "lon": None, "lat": None},
                "evidence": ["radar-1"], "run": "offline", "seq": 1}))
        rec.write(5.0, b"status", pack_map({"type": "status", "final": True}))


def test_export_writes_rfc7946_geojson_and_kml(tmp_path, capsys):
    res = tmp_path / "run.bzres"
    _result(res)
    out = tmp_path / "gis"
    assert main(["export", str(res), "--geojson", str(out), "--kml", str(tmp_path / "r.kml"),
                 "--start", "2026-12-02T03:00:00Z"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 4
    zones, tracks, alerts = (json.loads((out / f"{n}.geojson").read_text())
                             for n in ("zones", "tracks", "alerts"))
    for fc in (zones, tracks, alerts):
        check_feature_collection(fc)
    paths = {f["id"]: f for f in tracks["features"]}
    assert paths[1]["geometry"]["type"] == "LineString"
    assert len(paths[1]["geometry"]["coordinates"]) == 5
    assert paths[2]["properties"]["cls"] == "person"
    assert paths[1]["properties"]["time_utc_start"] == "2026-12-02T03:00:00.000Z"
    (alert,) = alerts["features"]  # one feature per episode
    assert alert["properties"]["time_utc"] == "2026-12-02T03:00:02.000Z"
    lon, lat = FRAME.to_lonlat(np.array([-300.0, 400.0]))
    assert alert["geometry"]["coordinates"] == [round(lon, 7), round(lat, 7)]
    kml = etree.parse(str(tmp_path / "r.kml"))
    assert len(kml.findall(".//{http://www.opengis.net/kml/2.2}Placemark")) == 4


def test_export_says_what_is_missing(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.bzres")]) == 2
    assert "--geojson DIR and/or --kml FILE" in capsys.readouterr().err


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_cot_command_sends_tracks_and_alerts_over_udp(fake_service):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(DEADLINE)
        zones = _zones_file(fake_service)
        proc = subprocess.Popen(
            [sys.executable, "-m", "replay.cli", "cot", "--connect", fake_service.pub_endpoint,
             "--snapshot", fake_service.snap_endpoint, "--zones", str(zones), "--origin",
             f"{ORIGIN[0]},{ORIGIN[1]}", "--to", f"udp://127.0.0.1:{udp.getsockname()[1]}",
             "--interval", "0.2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            fake_service.wait_subscribers(timeout=DEADLINE)
            fake_service.status()
            fake_service.tracks(1.0, [4], [[0.0, -300.0]], v=[[0.0, 3.0]], cls=[2])
            fake_service.alert("zone-a:incursion:4:0", track_id=4)
            types: set[str] = set()
            deadline = time.monotonic() + DEADLINE
            while not {"a-u-G-E-V", "b-m-p-s-m"} <= types:
                assert time.monotonic() < deadline, types
                data, _ = udp.recvfrom(65536)
                event = ET.fromstring(data)
                types.add(event.get("type"))
                if event.get("type") == "b-m-p-s-m":
                    assert "zone-a:incursion:4:0" in event.find("detail/remarks").text
        finally:
            _stop(proc)
            proc.stderr.close()
    assert proc.returncode == 0


def _zones_file(fake_service):
    path = os.path.join(os.path.dirname(fake_service.pub_endpoint[len("ipc://"):]),
                        "zones.geojson")
    with open(path, "w") as fh:
        json.dump(make_layers().zones, fh)
    return path


def test_ui_command_serves_and_reports_its_url(fake_service):
    zones = _zones_file(fake_service)
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "ui", "--connect", fake_service.pub_endpoint,
         "--zones", zones, "--origin", f"{ORIGIN[0]},{ORIGIN[1]}", "--http", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        line = PipeLines(proc.stderr).until(lambda s: "map at http://" in s,
                                            time.monotonic() + DEADLINE)
        url = line.split("map at ")[1].split()[0]
        with urllib.request.urlopen(url + "zones.geojson", timeout=DEADLINE) as r:
            check_feature_collection(json.load(r))
    finally:
        _stop(proc)
        proc.stderr.close()
    assert proc.returncode == 0


def test_ui_command_says_when_the_service_stops_goes_silent_and_is_back(fake_service):
    zones = _zones_file(fake_service)
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "ui", "--connect", fake_service.pub_endpoint,
         "--zones", zones, "--origin", f"{ORIGIN[0]},{ORIGIN[1]}", "--http", "127.0.0.1:0",
         "--silence", "0.5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        err = PipeLines(proc.stderr)
        deadline = time.monotonic() + DEADLINE
        err.until(lambda s: "map at http://" in s, deadline)
        fake_service.wait_subscribers()
        fake_service.status(final=True)  # a clean stop: its last status says so
        line = err.until(lambda s: "bufferzone ui: SERVICE" in s, deadline)
        assert "SERVICE STOPPED" in line and fake_service.pub_endpoint in line
        # started again: it talks (from this thread only, until the ui says it hears)
        talking = threading.Event()

        def talk() -> None:
            while not talking.wait(0.1):
                fake_service.status()

        speaker = threading.Thread(target=talk, daemon=True)
        speaker.start()
        try:
            err.until(lambda s: "hearing from" in s, deadline)
        finally:
            talking.set()
            speaker.join(DEADLINE)
        # and then killed: nothing more
        line = err.until(lambda s: "bufferzone ui: SERVICE" in s, deadline)
        assert "SERVICE SILENT" in line
    finally:
        _stop(proc)
        proc.stderr.close()
    assert proc.returncode == 0
