"""``bufferzone demo``: the embedded default scenario, end to end, on this machine.

Three separate processes talk over ipc sockets in a temporary directory: the sensor
simulator publishes detections, the tracker service tracks and raises alerts, and an
alert subscriber prints them as they happen. This process starts them, listens to the
service's ``status`` messages, stops everything when the scenario is over, and prints
a summary. Nothing is left running: every child is stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.cli.common import parse_speed

if TYPE_CHECKING:
    import zmq

# The README and ``make demo`` say 8x: the 15-minute scenario in about two minutes.
DEFAULT_SPEED = 8.0
# Where the live map is served (``bufferzone ui``); --http changes it, --no-ui drops it.
DEFAULT_HTTP = "127.0.0.1:8080"

DESCRIPTION = """\
Run the embedded default scenario end to end on this machine, in three processes
that talk over ipc sockets in a temporary directory: the sensor simulator publishes
detections, the tracker service tracks them and raises alerts, and an alert
subscriber prints the alerts as they happen. When the scenario is over everything is
stopped and a summary is printed. At the default 8x the 15-minute scenario takes
about two minutes.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the default scenario end to end: sensors -> tracker -> alerts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario_pos", nargs="?", metavar="SCENARIO",
                   help="scenario TOML, or 'default' for the embedded one (the default)")
    p.add_argument("--scenario", dest="scenario_opt", metavar="SCENARIO",
                   help="the same, as an option")
    p.add_argument("--speed", type=parse_speed, default=DEFAULT_SPEED, metavar="X",
                   help=f"multiple of real time (default {DEFAULT_SPEED:g})")
    p.add_argument("--workdir", help="keep sockets, alert log and outputs here (default: temp dir)")
    p.add_argument("--http", default=DEFAULT_HTTP, metavar="HOST:PORT",
                   help=f"serve the live map here (default {DEFAULT_HTTP}; port 0: any free)")
    p.add_argument("--no-ui", action="store_true", help="do not start the live map")
    p.add_argument(
        "--secure",
        action="store_true",
        help="CurveZMQ everywhere: make keys for the service, the sensors and the "
        "subscribers in <workdir>/keys and register them",
    )
    p.set_defaults(func=run_demo)


def _spawn(args: list[str], **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "replay.cli", *args], **kwargs)


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_status(sub: zmq.Socket, timeout: float, final: bool = False) -> dict[str, Any] | None:
    """Next ``status`` message (the ``final`` one if asked) within ``timeout`` seconds."""
    from fusion.messages import WireError, unpack_map

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not sub.poll(int(left * 1e3)):
            break
        frames = sub.recv_multipart()
        try:
            status = unpack_map(frames[-1])
        except WireError:
            continue
        if not final or status.get("final"):
            return status
    return None


def summary_lines(status: dict[str, Any], wall: float) -> list[str]:
    alerts = status.get("alerts", {})
    opened = {k.split(".")[0]: v for k, v in alerts.items() if k.endswith(".open")}
    lat = status.get("latency_ms", {})
    lines = [
        "",
        "== bufferzone demo summary",
        f"wall time            {wall:.1f} s",
        f"batches / detections {status['batches']} / {status['detections']}",
        f"tracks confirmed     {status['tracks_confirmed_total']} "
        f"(live at end: {status['confirmed_tracks']})",
        "track ids kept       "
        + (", ".join(f"{how} {n}" for how, n in (status.get("ids_continued") or {}).items())
           or "none"),
        "alerts opened        "
        + (", ".join(f"{k} {v}" for k, v in sorted(opened.items())) or "none"),
        f"alerts still open    {status['open_alerts']}",
        f"rejected messages    {status['rejected_total']} {status.get('rejected') or ''}",
        f"sequence gaps        {sum(status.get('gaps', {}).values())}",
        f"late batches         {status['late_batches']} (fused out of sequence: "
        f"{status['oosm_updates']} track updates)",
        f"processing latency   p50 {lat.get('p50', 0):.2f} ms, p99 {lat.get('p99', 0):.2f} ms, "
        f"max {lat.get('max', 0):.2f} ms (receipt to alerts published)",
    ]
    return lines


def make_demo_keys(work: Path) -> dict[str, list[str]]:
    """Keys and a [security] file for the demo; returns the extra CLI args per process."""
    from fusion.security import create_keys

    keys = work / "keys"
    for name in ("server", "sensors", "alerts", "demo"):
        if not (keys / f"{name}.key_secret").exists():
            create_keys(keys, name)
    (work / "security.toml").write_text(
        "[security]\n"
        'server_key = "keys/server.key_secret"\n'
        'keys_dir = "keys"\n'
        'subscribers = ["alerts", "demo"]\n'
        "[security.sensors]\n"
        '"*" = ["sensors"]  # one simulator process speaks for every sensor\n'
    )
    server = str(keys / "server.key")
    return {
        "track": ["--security", str(work / "security.toml")],
        "sensors": ["--key", str(keys / "sensors.key_secret"), "--server-key", server],
        "alerts": ["--key", str(keys / "alerts.key_secret"), "--server-key", server],
    }


def run_demo(args: argparse.Namespace) -> int:
    import zmq

    from fusion.security import load_keys
    from replay.cli.common import load_scenario_checked, scenario_of

    started = time.monotonic()
    args.scenario = scenario_of(args, "default")
    load_scenario_checked(args.scenario)  # a bad file is reported here, not by a child
    speed = "max" if args.speed is None else f"{args.speed:g}"
    with tempfile.TemporaryDirectory(prefix="bufferzone-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        det, pub, snap = (f"ipc://{work}/{name}.sock" for name in ("det", "pub", "snapshot"))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        procs: list[subprocess.Popen] = []
        ctx = zmq.Context()
        extra: dict[str, list[str]] = {"track": [], "sensors": [], "alerts": []}
        if getattr(args, "secure", False):
            extra = make_demo_keys(work)
            print(f"[demo] CURVE on: keys in {work / 'keys'}", flush=True)
        try:
            with ctx.socket(zmq.SUB) as status_sub:
                status_sub.setsockopt(zmq.LINGER, 0)
                if extra["track"]:
                    load_keys(
                        work / "keys" / "demo.key_secret", work / "keys" / "server.key"
                    ).apply_client(status_sub)
                status_sub.setsockopt(zmq.SUBSCRIBE, b"status")
                status_sub.connect(pub)
                print(f"[demo] starting the tracker service (sockets in {work})", flush=True)
                service = _spawn(
                    [
                        "track",
                        "--scenario",
                        args.scenario,
                        "--bind",
                        det,
                        "--publish",
                        pub,
                        "--snapshot",
                        snap,
                        "--alert-log",
                        str(work / "alerts.log"),
                        *extra["track"],
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
                procs.append(service)
                if _wait_status(status_sub, 60.0) is None:
                    print("[demo] the tracker service did not come up", file=sys.stderr)
                    return 1
                print("[demo] starting the alert subscriber", flush=True)
                procs.append(
                    _spawn(
                        ["alerts", "--connect", pub, "--snapshot", snap, *extra["alerts"]], env=env
                    )
                )
                if not getattr(args, "no_ui", False):
                    ui = _spawn(
                        ["ui", "--connect", pub, "--snapshot", snap, "--scenario",
                         args.scenario, "--http", args.http, *extra["alerts"]],
                        env=env,
                    )
                    procs.append(ui)
                    print(f"[demo] live map: http://{args.http}/ (bufferzone ui; open it in "
                          "a browser)", flush=True)
                print(
                    f"[demo] starting the sensors at {speed}x real time "
                    "(building the scenario's feed first)",
                    flush=True,
                )
                sensors = _spawn(
                    [
                        "sensors",
                        args.scenario,
                        "--connect",
                        det,
                        "--speed",
                        speed,
                        "--truth-out",
                        str(work / "truth.npz"),
                        # Faster than the tracker follows, the feed ends with batches
                        # still queued; the default 2 s would throw that tail away.
                        "--linger",
                        "60",
                        *extra["sensors"],
                    ],
                    env=env,
                )
                procs.append(sensors)
                while sensors.poll() is None:
                    status = _wait_status(status_sub, 15.0)
                    if status and status.get("t") is not None:
                        print(
                            f"[demo] t={status['t']:6.0f}s  "
                            f"tracks={status['confirmed_tracks']:4d}  "
                            f"batches={status['batches']}  open alerts={status['open_alerts']}",
                            flush=True,
                        )
                if sensors.returncode != 0:
                    print(f"[demo] sensors exited with {sensors.returncode}", file=sys.stderr)
                service.send_signal(signal.SIGINT)
                final = _wait_status(status_sub, 30.0, final=True)
                time.sleep(0.5)  # let the subscriber print the last alerts it received
        finally:
            for proc in reversed(procs):
                _stop(proc)
            ctx.term()
        if final is None:
            print("[demo] no final status from the service", file=sys.stderr)
            return 1
        print("\n".join(summary_lines(final, time.monotonic() - started)), flush=True)
        return 0 if sensors.returncode == 0 else 1
