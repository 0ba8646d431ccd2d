"""What a new user trips over (issue 16): each bad input is one line naming the problem,
a non-zero exit and no traceback; each missing piece of help or feedback is there."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import tomllib

import pytest

from fusion.geo import ImplausibleCoordinates, check_near_origin
from replay.cli import build_parser, main
from replay.cli.common import join_dashed_values
from replay.progress import ticker
from replay.recording import read_recording
from tests.replay.clihelp import REPO, TINY, assert_refused, run_cli, spawn_cli

# A zone near Nicosia (lon 33.37, lat 35.17): the UN buffer zone case of the issue.
ORIGIN = (33.37, 35.17)
RING = [[33.34, 35.168], [33.40, 35.168], [33.40, 35.172], [33.34, 35.172], [33.34, 35.168]]


def _geojson(ring) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "properties": {"name": "zone-c"},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }],
    }


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


# ------------------------------------------------------------------ 1: swapped lat/lon


def test_swapped_lat_lon_is_refused_and_named():
    check_near_origin([p for p in RING], ORIGIN)  # the right order passes
    swapped = [[lat, lon] for lon, lat in RING]
    with pytest.raises(ImplausibleCoordinates, match="did you swap lat/lon"):
        check_near_origin(swapped, ORIGIN)
    # Far away but not explained by a swap: the origin is questioned instead.
    with pytest.raises(ImplausibleCoordinates, match="is the origin right"):
        check_near_origin([[x + 5.0, y] for x, y in RING], ORIGIN)


def test_track_refuses_a_swapped_geojson_zone(tmp_path, free_port):
    zones = tmp_path / "zones.geojson"
    zones.write_text(json.dumps(_geojson([[lat, lon] for lon, lat in RING])))
    proc = run_cli("track", "--zones", str(zones), "--origin", "33.37,35.17",
                   "--bind", f"tcp://127.0.0.1:{free_port}", cwd=tmp_path)
    assert_refused(proc, "bufferzone track:", "did you swap lat/lon?")


def test_simulate_refuses_a_scenario_with_a_swapped_lonlat_zone(tmp_path):
    bad = TINY.replace(
        'local = [[-3000.0, -300.0], [3000.0, -300.0], [3000.0, 300.0], [-3000.0, 300.0]]',
        "lonlat = [[44.99, 23.97], [44.99, 24.03], [45.01, 24.03], [45.01, 23.97]]",
    )
    assert "lonlat" in bad
    (tmp_path / "bad.toml").write_text(bad)
    proc = run_cli("simulate", "bad.toml", "--out", "x.bzrec", cwd=tmp_path)
    assert_refused(proc, "did you swap lat/lon?")
    assert not (tmp_path / "x.bzrec").exists()


# ------------------------------------------------------------------ 2: western longitudes


def test_origin_with_a_western_longitude_parses_without_the_equals_sign():
    zones = REPO / "examples" / "zones.geojson"
    argv = ["track", "--zones", str(zones), "--origin", "-5.35,36.10"]
    args = build_parser().parse_args(join_dashed_values(argv))
    assert args.origin == (-5.35, 36.10)
    from replay.cli.service import _zones_and_frame

    zone_set, frame = _zones_and_frame(args)
    assert (frame.lon0, frame.lat0) == (-5.35, 36.10)
    assert [z.name for z in zone_set] == ["zone-g"]


def test_origin_errors_are_one_line(tmp_path):
    proc = run_cli("track", "--zones", "z.geojson", "--origin", "36.1,-5.35x", cwd=tmp_path)
    assert_refused(proc, "--origin", "expected LON,LAT")
    proc = run_cli("track", "--zones", "z.geojson", "--origin", "45.0,120.0", cwd=tmp_path)
    assert_refused(proc, "not a valid LON,LAT", "did you swap lat/lon?")


# ------------------------------------------------------------------ 3: endpoints


def test_an_endpoint_without_a_transport_is_refused_with_the_fix(tmp_path):
    proc = run_cli("track", "--bind", "127.0.0.1:5556", cwd=tmp_path)
    assert_refused(proc, "not a ZeroMQ endpoint", "did you mean tcp://127.0.0.1:5556")
    proc = run_cli("sensors", "default", "--bind", "tcp://127.0.0.1", cwd=tmp_path)
    assert_refused(proc, "needs host:port")


def test_track_names_the_endpoint_already_in_use(tmp_path, busy_port, free_port):
    proc = run_cli("track", "--bind", f"tcp://127.0.0.1:{busy_port}",
                   "--publish", f"tcp://127.0.0.1:{free_port}", cwd=tmp_path)
    assert_refused(proc, f"cannot bind tcp://127.0.0.1:{busy_port}", "already in use")
    proc = run_cli("track", "--bind", f"tcp://127.0.0.1:{free_port}",
                   "--publish", f"tcp://127.0.0.1:{busy_port}", cwd=tmp_path)
    assert_refused(proc, f"tcp://127.0.0.1:{busy_port}", "already in use")


def test_sensors_and_replay_name_the_endpoint_already_in_use(tmp_path, busy_port, tiny_toml):
    proc = run_cli("sensors", str(tiny_toml), "--bind", f"tcp://127.0.0.1:{busy_port}",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "already in use" in proc.stderr.strip().splitlines()[-1]
    assert main(["simulate", str(tiny_toml), "--out", str(tmp_path / "t.bzrec")]) == 0
    proc = run_cli("replay", "t.bzrec", "--publish", f"tcp://127.0.0.1:{busy_port}",
                   cwd=tmp_path)
    assert_refused(proc, "already in use")


def test_a_zeromq_error_inside_the_service_is_one_line(tmp_path):
    # An ipc path in a directory that does not exist: only ZeroMQ can find that out.
    proc = run_cli("track", "--scenario", "default", "--bind",
                   f"ipc://{tmp_path}/no/such/dir/det.sock", "--publish",
                   f"ipc://{tmp_path}/pub.sock", "--snapshot", f"ipc://{tmp_path}/snap.sock",
                   cwd=tmp_path)
    assert_refused(proc, "ZeroMQ refused an endpoint")


# ------------------------------------------------------------------ 4, 5: alerts


def test_alerts_refuses_an_unknown_kind(tmp_path):
    proc = run_cli("alerts", "--connect", f"ipc://{tmp_path}/none.sock", "--kind", "incurison",
                   cwd=tmp_path)
    assert_refused(proc, "unknown alert kind 'incurison'", "incursion")


def test_alerts_says_when_nothing_is_heard(tmp_path):
    proc = run_cli("alerts", "--connect", f"ipc://{tmp_path}/none.sock", "--silence", "0.3",
                   "--timeout", "1.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing heard from ipc://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_alerts_stopped_before_the_silence_notice_still_says_nothing_was_heard(tmp_path):
    # --timeout shorter than --silence: the run ends before the notice is due, and used
    # to end with no word at all, --zone unchecked.
    proc = run_cli("alerts", "--connect", f"ipc://{tmp_path}/none.sock", "--silence", "30",
                   "--timeout", "0.5", "--zone", "zone-z", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing was heard from ipc://" in proc.stderr
    assert "--zone zone-z could not be checked" in proc.stderr


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_alerts_refuses_a_zone_the_service_does_not_have(tmp_path, tiny_toml):
    det, pub, snap = (f"ipc://{tmp_path}/{n}.sock" for n in ("det", "pub", "snap"))
    service = spawn_cli("track", str(tiny_toml), "--bind", det, "--publish", pub,
                        "--snapshot", snap, cwd=tmp_path)
    try:
        proc = run_cli("alerts", "--connect", pub, "--zone", "zone-z", "--silence", "30",
                       cwd=tmp_path, timeout=60)
        last = assert_refused(proc, "unknown zone 'zone-z'", "zone-t")
        assert "bufferzone alerts:" in last
        ok = run_cli("alerts", "--connect", pub, "--zone", "zone-t", "--timeout", "3",
                     cwd=tmp_path, timeout=60)
        assert ok.returncode == 0 and "nothing heard" not in ok.stderr, ok.stderr
    finally:
        _stop(service)
    assert service.returncode == 0, service.stderr.read() if service.stderr else ""


# ------------------------------------------------------------------ 10: the CLI itself


def test_help_imports_no_heavy_module(tmp_path):
    code = (
        "import sys\nfrom replay.cli import build_parser\nbuild_parser()\n"
        "print(sorted(m for m in ('numpy', 'scipy', 'shapely', 'pyproj', 'zmq', "
        "'matplotlib', 'msgpack') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_fusion_root_reexports_are_lazy_but_work():
    code = (
        "import sys, fusion\nassert 'scipy' not in sys.modules\n"
        "from fusion import Tracker, TrackerConfig, DetectionBatch, AlertEngine, Zone, "
        "ZoneSet, load_rules\nprint(Tracker.__module__, load_rules.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fusion.tracking.tracker", "fusion.alerting.rules"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("bufferzone ")


def _help(capsys, *argv: str, flat: bool = True) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    return " ".join(out.split()) if flat else out


def test_help_shows_defaults_and_describes_every_option(capsys):
    from fusion.alerting.rules import KINDS, SEVERITIES
    from fusion.service import ServiceConfig
    from replay.cli import service

    defaults = ServiceConfig()
    assert service.SERVICE_DEFAULTS == {k: getattr(defaults, k) for k in service.SERVICE_DEFAULTS}
    assert set(service.KINDS) == set(KINDS) and service.SEVERITIES == SEVERITIES
    track = _help(capsys, "track")
    assert "default tcp://127.0.0.1:5560" in track and "default tcp://127.0.0.1:5561" in track
    assert "(default 0.5)" in track
    replay = _help(capsys, "replay")
    assert "subscription frames to wait for" in replay and "seconds to wait for them" in replay
    simulate = _help(capsys, "simulate")
    assert "docs/SCENARIOS.md" in simulate
    demo = _help(capsys, "demo")
    assert "``" not in demo and "(default 8)" in demo
    for command in ("demo", "record", "replay", "simulate", "eval", "keys", "track",
                    "alerts", "sensors"):
        parser_help = _help(capsys, command, flat=False)
        # Every option line carries words after its metavar (argparse prints bare
        # option lines only for options without help).
        for line in parser_help.splitlines():
            stripped = line.strip()
            if stripped.startswith("--") and "  " not in stripped and line.startswith("  --"):
                nxt = parser_help.splitlines()[parser_help.splitlines().index(line) + 1]
                assert nxt.startswith("      "), f"{command}: {stripped} has no help"


def test_demo_speed_default_is_eight():
    args = build_parser().parse_args(["demo"])
    assert args.speed == 8.0


def test_scenario_positional_or_option(tmp_path, tiny_toml):
    a, b = tmp_path / "a.bzrec", tmp_path / "b.bzrec"
    assert main(["simulate", str(tiny_toml), "--out", str(a)]) == 0
    assert main(["simulate", "--scenario", str(tiny_toml), "--out", str(b)]) == 0
    assert [f.payload for f in read_recording(a).frames] == [
        f.payload for f in read_recording(b).frames
    ]
    args = build_parser().parse_args(["sensors", "--scenario", "default", "--connect", "ipc://x"])
    assert args.scenario_opt == "default"
    args = build_parser().parse_args(["track", str(tiny_toml), "--bind", "ipc://x"])
    assert args.scenario_pos == str(tiny_toml)
    proc = run_cli("simulate", "default", "--scenario", str(tiny_toml), "--out", "c.bzrec",
                   cwd=tmp_path)
    assert_refused(proc, "two scenarios given")


def test_ui_and_cot_take_the_scenario_either_way(tiny_toml):
    from replay.cli.ops import layers_of

    zones = set()
    for command in (["ui", str(tiny_toml)],
                    ["cot", "--scenario", str(tiny_toml), "--to", "udp://127.0.0.1:9"]):
        args = build_parser().parse_args([*command, "--connect", "tcp://127.0.0.1:1"])
        zones.add(json.dumps(layers_of(args).zones, sort_keys=True))
    default = build_parser().parse_args(["ui", "--connect", "tcp://127.0.0.1:1"])
    assert len(zones) == 1 and json.dumps(layers_of(default).zones, sort_keys=True) not in zones


def test_ticker_draws_one_line_on_a_terminal_only():
    drawn = threading.Event()
    calls = []

    def line() -> str:
        calls.append(1)
        drawn.set()
        return f"record: {len(calls)} messages"

    out = io.StringIO()
    with ticker(line, interval=0.01, stream=out, enabled=True):
        assert drawn.wait(10)
    text = out.getvalue()
    assert text.startswith("\rrecord: 1 messages") and text.endswith("\n")
    quiet = io.StringIO()  # not a terminal: nothing, however long it runs
    with ticker(line, interval=0.01, stream=quiet):
        pass
    assert quiet.getvalue() == ""


def test_licence_is_an_spdx_string():
    with open(REPO / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)
    assert project["project"]["license"] == "Apache-2.0"
    setuptools = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == ["setuptools>=77"]
    # The packages at the top of the checkout, said so: an editable install is then a
    # plain .pth line, without setuptools' "Editable installation" warning at install.
    assert project["tool"]["setuptools"]["package-dir"] == {"": "."}


def test_a_warning_reaches_a_command_line_user_as_one_line(tmp_path):
    # Python's default shows the warning's source file and line ("for frame in
    # reader:"), which means nothing to someone who ran bufferzone.
    (tmp_path / "t.toml").write_text(TINY)
    assert run_cli("simulate", "t.toml", "--out", "t.bzrec", cwd=tmp_path).returncode == 0
    whole = (tmp_path / "t.bzrec").read_bytes()
    (tmp_path / "cut.bzrec").write_bytes(whole[: len(whole) - 100])
    proc = run_cli("replay", "cut.bzrec", "--publish", f"ipc://{tmp_path}/p.sock", "--speed",
                   "max", "--wait-subscribers", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bufferzone replay: warning: cut.bzrec: truncated after" in proc.stderr
    assert "RecordingWarning" not in proc.stderr and "for frame in" not in proc.stderr


def test_an_alert_line_says_how_close_a_probe_came():
    from replay.cli.service import format_alert

    probe = {"kind": "probe", "event": "open", "t": 290.0, "severity": "low", "zone": "zone-a",
             "track_id": 7, "cls": "vehicle", "conf": 1.0, "side": "north", "p_inside": 0.0,
             "position": {"east": 10.0, "north": 900.0}, "speed": 1.2,
             "time_to_breach": None, "closest_approach": 71.7, "evidence": ["radar-1"]}
    line = format_alert(probe)
    assert "probe" in line and "came within 72 m" in line and "evidence=radar-1" in line
    assert "came within" not in format_alert({**probe, "kind": "exit", "closest_approach": None})
