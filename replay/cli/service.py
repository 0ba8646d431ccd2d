"""``bufferzone track`` (the service) and ``bufferzone alerts`` (a subscriber)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from typing import Any

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import SEVERITIES, load_rules
from fusion.alerting.zones import ZoneSet
from fusion.config import ConfigError
from fusion.geo import LocalFrame
from fusion.security import CurveServer, SecurityConfig, load_keys
from fusion.service import Pipeline, ServiceConfig, TrackerService, restore_pipeline
from fusion.service.alertlog import AlertLog
from fusion.service.client import AlertClient
from fusion.tracking.tracker import Tracker, TrackerConfig
from replay.cli.common import stop_on_signals

log = logging.getLogger("bufferzone.track")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "track",
        help="run the tracker service: detections in, tracks and alerts out",
        description="Subscribe to det.* feeds, track, and publish alert.<zone>.<kind>, "
        "track.update and status messages.",
    )
    p.add_argument("--config", metavar="TOML", help="file with [service] and [tracker] tables")
    p.add_argument(
        "--scenario",
        metavar="NAME|TOML",
        help="take zones and origin from a scenario ('default' for the embedded one)",
    )
    p.add_argument("--zones", metavar="GEOJSON", help="zones as GeoJSON in lon/lat")
    p.add_argument("--origin", metavar="LON,LAT", help="origin of the local frame (with --zones)")
    p.add_argument("--rules", metavar="TOML", help="alert rules (default: the shipped rules)")
    p.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="connect to a sensor publisher (repeatable)",
    )
    p.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="bind for sensor publishers to connect to (repeatable)",
    )
    p.add_argument("--publish", metavar="ENDPOINT", help="PUB endpoint for alerts/tracks/status")
    p.add_argument("--snapshot", metavar="ENDPOINT", help="endpoint answering open-alert requests")
    p.add_argument("--alert-log", metavar="FILE", help="durable alert log")
    p.add_argument("--reorder-window", type=float, metavar="S", help="seconds held for reordering")
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="checkpoint file (.npz): resumed from at start, rewritten periodically",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        metavar="S",
        help="seconds between checkpoints (default 10)",
    )
    p.add_argument(
        "--security",
        metavar="TOML",
        help="file with a [security] table: CURVE keys and allow-lists "
        "(default: the [security] table of --config, if any)",
    )
    p.set_defaults(func=run_track)

    a = subparsers.add_parser(
        "alerts",
        help="subscribe to the alert stream and print it",
        description="Print one line per alert event (or JSON lines), "
        "starting with the open alerts.",
    )
    a.add_argument(
        "--connect", required=True, metavar="ENDPOINT", help="the service's PUB endpoint"
    )
    a.add_argument("--snapshot", metavar="ENDPOINT", help="the service's snapshot endpoint")
    a.add_argument("--zone", action="append", metavar="NAME", help="only this zone (repeatable)")
    a.add_argument(
        "--kind", action="append", metavar="KIND", help="only this alert kind (repeatable)"
    )
    a.add_argument("--min-severity", choices=SEVERITIES, help="only at or above this level")
    a.add_argument("--json", action="store_true", help="print JSON lines")
    a.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds without alerts")
    a.add_argument("--count", type=int, metavar="N", help="exit after N alerts")
    add_curve_client_options(a)
    a.set_defaults(func=run_alerts)


def add_curve_client_options(p: argparse.ArgumentParser) -> None:
    """``--key`` and ``--server-key``: connect as a CURVE client of a secured service."""
    p.add_argument(
        "--key",
        metavar="FILE",
        help="this client's key pair (<name>.key_secret from 'bufferzone keys')",
    )
    p.add_argument(
        "--server-key",
        metavar="FILE",
        help="the service's public key (<name>.key); needed with --key",
    )


def curve_client_keys(args: argparse.Namespace) -> Any:
    """The CurveKeys of ``--key``/``--server-key``, or None (in the clear)."""
    if not args.key and not args.server_key:
        return None
    if not (args.key and args.server_key):
        raise ConfigError("--key and --server-key go together")
    return load_keys(args.key, args.server_key)


def _zones_and_frame(args: argparse.Namespace) -> tuple[ZoneSet, LocalFrame]:
    if args.zones:
        if not args.origin:
            raise ConfigError("--zones needs --origin LON,LAT for the local frame")
        lon, lat = (float(v) for v in args.origin.split(","))
        frame = LocalFrame(lon, lat)
        return ZoneSet.from_geojson(args.zones, frame), frame
    from sensors.scenario import load_scenario

    scenario = load_scenario(args.scenario or "default")
    return ZoneSet.from_geojson(scenario.zones_geojson(), scenario.frame), scenario.frame


def build_service(args: argparse.Namespace) -> TrackerService:
    service_config = ServiceConfig.from_toml(args.config) if args.config else ServiceConfig()
    tracker_config = TrackerConfig.from_toml(args.config) if args.config else TrackerConfig()
    overrides: dict[str, Any] = {}
    if args.connect:
        overrides["det_connect"] = tuple(args.connect)
    if args.bind:
        overrides["det_bind"] = tuple(args.bind)
    for name in (
        "publish",
        "snapshot",
        "alert_log",
        "reorder_window",
        "checkpoint",
        "checkpoint_interval",
    ):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    service_config = replace(service_config, **overrides)
    zones, frame = _zones_and_frame(args)
    engine = AlertEngine(zones, load_rules(args.rules), frame)
    alert_log = None
    if service_config.alert_log:
        alert_log = AlertLog(service_config.alert_log)  # cuts and reports a damaged tail
    pipeline = Pipeline(Tracker(tracker_config), engine, service_config, alert_log=alert_log)
    restore_pipeline(pipeline, service_config.checkpoint, service_config.alert_log)
    security_file = args.security or args.config
    security = SecurityConfig.from_toml(security_file) if security_file else SecurityConfig()
    server = CurveServer(security) if security.enabled else None
    return TrackerService(pipeline, service_config, security=server)


def run_track(args: argparse.Namespace) -> int:
    try:
        service = build_service(args)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"bufferzone track: {exc}", file=sys.stderr)
        return 2
    # TrackerService.run logs the loud banner when it runs without authentication.
    with stop_on_signals(service.stop):
        final = service.run()
    print(json.dumps(final), file=sys.stdout, flush=True)
    return 0


def format_alert(alert: dict[str, Any]) -> str:
    """One readable line per alert event."""
    pos = alert.get("position") or {}
    where = (
        f"{pos['lat']:.5f},{pos['lon']:.5f}"
        if pos.get("lat") is not None
        else f"E{pos.get('east', 0):.0f} N{pos.get('north', 0):.0f}"
    )
    ttb = alert.get("time_to_breach")
    parts = [
        f"t={alert.get('t', 0):8.1f}",
        f"{alert.get('event', '?').upper():6}",
        f"{alert.get('kind', '?'):19}",
        f"{alert.get('severity', '?'):8}",
        f"{alert.get('zone', '?')}",
        f"track {alert.get('track_id')}",
        f"{alert.get('cls', 'unknown')}({alert.get('conf', 0):.2f})",
        f"from {alert.get('side', '?')}",
        f"p_in={alert.get('p_inside', 0):.2f}",
        f"at {where}",
        f"{alert.get('speed', 0):.1f} m/s",
    ]
    if ttb is not None:
        parts.append(f"breach in {ttb:.0f}s")
    parts.append("evidence=" + ",".join(alert.get("evidence", [])))
    if alert.get("snapshot"):
        parts.append("(already open)")
    return " ".join(parts)


def run_alerts(args: argparse.Namespace) -> int:
    try:
        curve = curve_client_keys(args)
    except ConfigError as exc:
        print(f"bufferzone alerts: {exc}", file=sys.stderr)
        return 2
    client = AlertClient(
        args.connect,
        args.snapshot,
        args.zone,
        args.kind,
        args.min_severity,
        timeout=args.timeout,
        curve=curve,
    )

    def interrupt() -> None:
        raise KeyboardInterrupt  # wakes the blocking receive; handled below like Ctrl-C

    seen = 0
    stream = iter(client)
    try:
        with stop_on_signals(interrupt):
            for alert in stream:
                seen += 1
                line = json.dumps(alert, sort_keys=True) if args.json else format_alert(alert)
                print(line, flush=True)
                if args.count is not None and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    except TimeoutError as exc:
        print(f"bufferzone alerts: {exc}", file=sys.stderr)
        return 1
    finally:
        stream.close()  # type: ignore[attr-defined]
    log.info("printed %d alert events; stream: %s", seen, client.stats)
    return 0
