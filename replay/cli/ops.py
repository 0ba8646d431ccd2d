"""``bufferzone ui`` (the live map), ``bufferzone cot`` (TAK output), ``bufferzone export``.

The operations centre's side: each is a subscriber of the service's PUB stream (or a
reader of a result file) that turns the picture into what operations tools show: a web
map with GeoJSON and Prometheus endpoints, Cursor-on-Target for ATAK/WinTAK, and
GeoJSON/KML files for GIS. See :mod:`replay.ops`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.cli.common import (
    CommandError,
    add_scenario_argument,
    load_scenario_checked,
    parse_endpoint,
    parse_lonlat,
    scenario_of,
)

if TYPE_CHECKING:
    from replay.ops.layers import Layers

log = logging.getLogger("bufferzone.ops")

DEFAULT_HTTP = "127.0.0.1:8080"


def parse_http(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0: any free port) for the web server."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. {DEFAULT_HTTP}; got {text!r}")
    return host.strip("[]"), int(port)


def _add_picture_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connect", required=True, metavar="ENDPOINT", type=parse_endpoint,
                   help="the service's PUB endpoint (alerts, tracks, status)")
    p.add_argument("--snapshot", metavar="ENDPOINT", type=parse_endpoint,
                   help="the service's snapshot endpoint (to start with the open alerts)")
    add_scenario_argument(p, "zones and sensors from this scenario (default: the embedded "
                          "one)", required=False)
    p.add_argument("--zones", metavar="GEOJSON", help="zones from a GeoJSON file instead "
                   "(lon/lat; needs --origin)")
    p.add_argument("--origin", type=parse_lonlat, metavar="LON,LAT",
                   help="the service's local-frame origin, with --zones")
    p.add_argument("--silence", type=float, metavar="S",
                   help="report the service silent after S seconds without a message "
                   "(default: three of its status intervals, at least 5 s)")
    p.add_argument("--key", metavar="FILE", help="this client's CURVE key pair (secured service)")
    p.add_argument("--server-key", metavar="FILE", help="the service's public key, with --key")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ui``, ``cot`` and ``export``."""
    u = subparsers.add_parser(
        "ui",
        help="serve the live map (and GeoJSON, /metrics) from the service's stream",
        description="A web page with the zones, sensors and their coverage, confirmed tracks "
        "with tails, velocity and class, and the alert list (click one to zoom to it), "
        "pushed live. Also serves /tracks.geojson, /alerts.geojson, /zones.geojson and "
        "/metrics (Prometheus). Needs no internet: without --tiles the map is drawn on a "
        "plain background with a graticule.",
    )
    _add_picture_options(u)
    u.add_argument("--http", type=parse_http, default=parse_http(DEFAULT_HTTP),
                   metavar="HOST:PORT", help=f"where to serve the page (default {DEFAULT_HTTP})")
    u.add_argument("--tiles", metavar="URL",
                   help="a tile URL template ({z}/{x}/{y}), e.g. a local tile server; "
                   "default none (no network needed)")
    u.set_defaults(func=run_ui)

    c = subparsers.add_parser(
        "cot",
        help="send tracks and alerts to ATAK/WinTAK/TAK Server as Cursor-on-Target",
        description="Subscribe to the service and send each confirmed track (every "
        "--interval seconds) and each alert event as a CoT event to a TAK endpoint.",
    )
    _add_picture_options(c)
    c.add_argument("--to", required=True, metavar="URL",
                   help="udp://HOST:PORT (e.g. multicast 239.2.3.1:6969, ATAK's SA "
                   "default) or tcp://HOST:PORT (a TAK Server's plain CoT input, 8087)")
    c.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between track updates (default 1)")
    c.set_defaults(func=run_cot)

    e = subparsers.add_parser(
        "export",
        help="write a result's zones, tracks and alerts as GeoJSON or KML",
        description="From a 'replay --offline' result (or a recording with the service's "
        "output): zones.geojson, tracks.geojson (each track's path) and alerts.geojson "
        "into a directory (--geojson DIR), or one KML document (--kml FILE).",
    )
    e.add_argument("result", metavar="RESULT", help="a .bzres result file")
    e.add_argument("--geojson", metavar="DIR", help="write zones/tracks/alerts.geojson here")
    e.add_argument("--kml", metavar="FILE", help="write one KML document")
    e.add_argument("--start", metavar="UTC",
                   help="UTC time of scenario time 0 (ISO 8601, e.g. 2026-12-02T03:00:00Z), "
                   "for a simulated result's time_utc; live recordings carry their own")
    e.set_defaults(func=run_export)


def layers_of(args: argparse.Namespace) -> Layers:
    """The map's zones and sensors from ``--scenario`` or ``--zones``/``--origin``."""
    from fusion.geo import ImplausibleCoordinates, check_near_origin, geojson_lonlat
    from replay.ops.layers import Layers

    scenario = scenario_of(args)
    if args.zones:
        if not args.origin:
            raise CommandError("--zones needs --origin LON,LAT (the service's frame)")
        if scenario:
            raise CommandError("give either --scenario or --zones, not both")
        try:
            doc = json.loads(Path(args.zones).read_text(encoding="utf-8"))
            check_near_origin(geojson_lonlat(doc), args.origin, f"zones in {args.zones}")
            return Layers.from_zones_file(args.zones, args.origin)
        except (OSError, ValueError, ImplausibleCoordinates) as exc:
            raise CommandError(f"cannot use zones from {args.zones}: {exc}") from None
    if args.origin:
        raise CommandError("--origin goes with --zones (a scenario has its own origin)")
    return Layers.from_scenario(load_scenario_checked(scenario or "default"))


def _curve(args: argparse.Namespace) -> Any:
    from fusion.config import ConfigError
    from replay.cli.service import curve_client_keys

    try:
        return curve_client_keys(args)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def _run_until_signal(main: Any, stop: asyncio.Event) -> None:
    """Run ``main`` on a fresh loop; SIGINT/SIGTERM set ``stop`` (clean shutdown)."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main

    asyncio.run(runner())


def run_ui(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone ui``."""
    from replay.ops.picture import OpsPicture
    from replay.ops.web import OpsServer

    layers = layers_of(args)
    curve = _curve(args)
    host, port = args.http

    async def main() -> None:
        picture = OpsPicture(layers, silence=args.silence)
        server = OpsServer(picture, args.connect, args.snapshot, host, port,
                           tiles=args.tiles, curve=curve)
        try:
            await server.start()
        except OSError as exc:
            raise CommandError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        print(f"bufferzone ui: map at {server.url} (following {args.connect})",
              file=sys.stderr, flush=True)
        said = "live"  # the last state told on stderr ("waiting" is not news)
        try:
            while not server.stopping.is_set():
                try:
                    await asyncio.wait_for(server.stopping.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                state = picture.service_state()["state"]
                if state == said or state == "waiting":
                    continue
                if state == "silent":
                    print(f"bufferzone ui: SERVICE SILENT: nothing heard from {args.connect} "
                          f"for {picture.silence_limit():g} s (the map says so too)",
                          file=sys.stderr, flush=True)
                elif state == "stopped":
                    # A clean stop (its final status) is news too: the map now shows
                    # a picture nobody updates.
                    print(f"bufferzone ui: SERVICE STOPPED: {args.connect} sent its final "
                          "status; the map shows its last picture", file=sys.stderr,
                          flush=True)
                else:
                    print(f"bufferzone ui: hearing from {args.connect} again",
                          file=sys.stderr, flush=True)
                said = state
        finally:
            await server.stop()

    stop = asyncio.Event()
    # the signal sets the server's own event once it exists; this one only starts it
    _run_until_signal(_wrap_stop(main(), stop), stop)
    return 0


async def _wrap_stop(coro: Any, stop: asyncio.Event) -> None:
    """Run ``coro`` until it ends or ``stop`` is set (then cancel it, cleanly)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task not in done:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    stopper.cancel()
    if task in done:
        task.result()


def run_cot(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone cot``."""
    from replay.ops.cot import CotSender, pump
    from replay.ops.feed import follow
    from replay.ops.picture import OpsPicture

    if "://" not in args.to or args.to.split("://")[0] not in ("udp", "tcp", "tls"):
        raise CommandError(f"--to: expected udp://HOST:PORT or tcp://HOST:PORT, got {args.to!r}")
    layers = layers_of(args)
    curve = _curve(args)

    async def main() -> None:
        picture = OpsPicture(layers, silence=args.silence)
        sender = CotSender(args.to)
        try:
            await sender.open()
        except OSError as exc:
            raise CommandError(f"cannot reach {args.to}: {exc.strerror or exc}") from None
        changed, stop = asyncio.Event(), asyncio.Event()

        def on_change(alert: bool) -> None:
            if alert:
                changed.set()

        print(f"bufferzone cot: sending to {args.to} (following {args.connect})",
              file=sys.stderr, flush=True)
        feed = asyncio.ensure_future(
            follow(picture, args.connect, args.snapshot, on_change, stop, curve=curve))
        try:
            await pump(picture, sender, changed, stop, args.interval)
        finally:
            stop.set()
            await feed
            await sender.close()
            log.info("sent %d CoT events", sender.sent)

    stop = asyncio.Event()
    _run_until_signal(_wrap_stop(main(), stop), stop)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone export``."""
    from replay.ops import export

    if not (args.geojson or args.kml):
        raise CommandError("say what to write: --geojson DIR and/or --kml FILE")
    start = None
    if args.start:
        from datetime import datetime

        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise CommandError(f"--start: not an ISO 8601 time: {args.start!r}") from None
    try:
        written = export.export_result(args.result, args.geojson, args.kml, start)
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(f"cannot export {args.result}: {exc}") from None
    for path in written:
        print(path)
    return 0
