"""``bufferzone track`` (the service) and ``bufferzone alerts`` (a subscriber)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from replay.cli.common import (
    CommandError,
    add_scenario_argument,
    check_bindable,
    load_scenario_checked,
    parse_endpoint,
    parse_lonlat,
    scenario_of,
    stop_on_signals,
)

if TYPE_CHECKING:
    from fusion.alerting.zones import ZoneSet
    from fusion.geo import LocalFrame
    from fusion.service import TrackerService

log = logging.getLogger("bufferzone.track")

# ServiceConfig's defaults, spelled out for --help without importing the service (a
# test holds them equal). --config's [service] table overrides them, options override both.
SERVICE_DEFAULTS = {
    "publish": "tcp://127.0.0.1:5560",
    "snapshot": "tcp://127.0.0.1:5561",
    "reorder_window": 0.5,
    "checkpoint_interval": 10.0,
}
# fusion.alerting.rules.SEVERITIES and KINDS, for the same reason (a test holds them equal).
SEVERITIES = ("info", "low", "medium", "high", "critical")
KINDS = ("incursion", "predicted_incursion", "loitering", "exit", "lost_inside", "probe")
# fusion.service.liveness.KINDS: the service's own alerts about silent sensors, published
# under the zone "sensors" (alert.sensors.sensor_silent).
LIVENESS_KINDS = ("sensor_silent", "sensor_back")
# Seconds ``alerts`` waits for a first status from the service before saying so.
SILENCE_WARNING_S = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``track`` and ``alerts`` sub-commands."""
    p = subparsers.add_parser(
        "track",
        help="run the tracker service: detections in, tracks and alerts out",
        description="Subscribe to det.* feeds, track, and publish alert.<zone>.<kind>, "
        "track.update and status messages. Zones come from --scenario (default: the "
        "embedded one) or from --zones with --origin.",
    )
    p.add_argument("--config", metavar="TOML", help="file with [service] and [tracker] tables "
                   "(example: examples/service.toml)")
    add_scenario_argument(
        p, "take zones and origin from this scenario (default: 'default', the embedded one)",
        required=False,
    )
    p.add_argument("--zones", metavar="GEOJSON", help="zones as GeoJSON in lon/lat")
    p.add_argument("--origin", metavar="LON,LAT", type=parse_lonlat,
                   help="origin of the local frame (with --zones), e.g. --origin -5.35,36.10")
    p.add_argument("--rules", metavar="TOML", help="alert rules (default: the shipped rules)")
    p.add_argument(
        "--connect",
        action="append",
        default=[],
        type=parse_endpoint,
        metavar="ENDPOINT",
        help="connect to a sensor publisher that binds (repeatable)",
    )
    p.add_argument(
        "--bind",
        action="append",
        default=[],
        type=parse_endpoint,
        metavar="ENDPOINT",
        help="bind for sensor publishers to connect to, e.g. tcp://127.0.0.1:5556 (repeatable)",
    )
    p.add_argument("--publish", metavar="ENDPOINT", type=parse_endpoint,
                   help="PUB endpoint for alerts, tracks and status "
                   f"(default {SERVICE_DEFAULTS['publish']})")
    p.add_argument("--snapshot", metavar="ENDPOINT", type=parse_endpoint,
                   help="endpoint answering open-alert requests "
                   f"(default {SERVICE_DEFAULTS['snapshot']})")
    p.add_argument("--alert-log", metavar="FILE", help="durable alert log (default: none)")
    p.add_argument("--reorder-window", type=float, metavar="S",
                   help="seconds batches are held to put them in measurement-time order "
                   f"(default {SERVICE_DEFAULTS['reorder_window']:g})")
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="checkpoint file (.npz): resumed from at start, rewritten periodically",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        metavar="S",
        help=f"seconds between checkpoints (default {SERVICE_DEFAULTS['checkpoint_interval']:g})",
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
        "starting with the open alerts. Says so on stderr when nothing is heard from the "
        "service (see --silence).",
    )
    a.add_argument(
        "--connect", required=True, metavar="ENDPOINT", type=parse_endpoint,
        help="the service's PUB endpoint",
    )
    a.add_argument("--snapshot", metavar="ENDPOINT", type=parse_endpoint,
                   help="the service's snapshot endpoint (to start with the open alerts)")
    a.add_argument("--zone", action="append", metavar="NAME",
                   help="only this zone (repeatable); checked against the service's zones")
    a.add_argument(
        "--kind", action="append", metavar="KIND",
        help=f"only this alert kind (repeatable): {', '.join(KINDS + LIVENESS_KINDS)}",
    )
    a.add_argument("--min-severity", choices=SEVERITIES, help="only at or above this level")
    a.add_argument("--json", action="store_true", help="print JSON lines")
    a.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds without alerts")
    a.add_argument("--count", type=int, metavar="N", help="exit after N alerts")
    a.add_argument("--silence", type=float, default=SILENCE_WARNING_S, metavar="S",
                   help="say so on stderr when nothing (not even the service's status "
                   f"heartbeat) is heard for S seconds (default {SILENCE_WARNING_S:g})")
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
    from fusion.config import ConfigError
    from fusion.security import load_keys

    if not args.key and not args.server_key:
        return None
    if not (args.key and args.server_key):
        raise ConfigError("--key and --server-key go together")
    return load_keys(args.key, args.server_key)


def load_zones_file(path: str, origin: tuple[float, float]) -> tuple[ZoneSet, LocalFrame]:
    """Zones from a GeoJSON file in lon/lat around ``origin``, refusing implausible ones.

    Raises
    ------
    CommandError
        When the file cannot be read or its coordinates cannot belong to ``origin``
        (lat/lon swapped, or the wrong origin).
    """
    from fusion.alerting.zones import ZoneError, ZoneSet
    from fusion.geo import ImplausibleCoordinates, LocalFrame, check_near_origin, geojson_lonlat

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read zones from {path}: {exc}") from None
    try:
        check_near_origin(geojson_lonlat(doc), origin, f"zones in {path}")
        frame = LocalFrame(*origin)
        return ZoneSet.from_geojson(doc, frame), frame
    except (ImplausibleCoordinates, ZoneError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def _zones_and_frame(args: argparse.Namespace) -> tuple[ZoneSet, LocalFrame]:
    from fusion.alerting.zones import ZoneSet

    name = getattr(args, "scenario", None) or scenario_of(args)
    if args.zones:
        if not args.origin:
            raise CommandError("--zones needs --origin LON,LAT for the local frame")
        if name:
            raise CommandError("give zones with either --scenario or --zones, not both")
        return load_zones_file(args.zones, args.origin)
    if args.origin:
        raise CommandError("--origin goes with --zones (a scenario has its own origin)")
    scenario = load_scenario_checked(name or "default")
    return ZoneSet.from_geojson(scenario.zones_geojson(), scenario.frame), scenario.frame


def build_service(args: argparse.Namespace) -> TrackerService:
    """The service that ``bufferzone track`` runs, from its options."""
    from fusion.alerting.engine import AlertEngine
    from fusion.alerting.rules import load_rules
    from fusion.security import CurveServer, SecurityConfig
    from fusion.service import Pipeline, ServiceConfig, TrackerService, restore_pipeline
    from fusion.service.alertlog import AlertLog
    from fusion.service.liveness import LivenessConfig, SensorLiveness
    from fusion.tracking.tracker import Tracker, TrackerConfig

    args.scenario = scenario_of(args)
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
    for endpoint in (*service_config.det_connect, *service_config.det_bind,
                     service_config.publish, service_config.snapshot):
        if endpoint:
            try:
                parse_endpoint(endpoint)
            except argparse.ArgumentTypeError as exc:
                raise CommandError(f"{args.config}: {exc}") from None
    if not (service_config.det_connect or service_config.det_bind):
        raise CommandError("no detection feed: give --bind or --connect (or det_bind/det_connect "
                           "in the [service] table of --config)")
    check_bindable([*service_config.det_bind, service_config.publish, service_config.snapshot])
    zones, frame = _zones_and_frame(args)
    rules = load_rules(args.rules)
    engine = AlertEngine(zones, rules, frame)
    alert_log = None
    if service_config.alert_log:
        alert_log = AlertLog(service_config.alert_log)  # quarantines and reports any damage
    pipeline = Pipeline(Tracker(tracker_config), engine, service_config, alert_log=alert_log)
    liveness = LivenessConfig.from_toml(args.config) if args.config else LivenessConfig()
    pipeline.enable_ops(SensorLiveness(
        liveness, clock=pipeline.clock, to_lonlat=None if frame is None else frame.to_lonlat,
        known=service_config.sensors,
    ))
    restore_pipeline(pipeline, service_config.checkpoint, service_config.alert_log)
    security_file = args.security or args.config
    security = SecurityConfig.from_toml(security_file) if security_file else SecurityConfig()
    server = CurveServer(security) if security.enabled else None
    service = TrackerService(pipeline, service_config, security=server)
    return service


def run_track(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone track``."""
    import zmq

    from fusion.config import ConfigError
    from replay.progress import ticker

    try:
        service = build_service(args)
    except (ConfigError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    pipeline = service.pipeline
    endpoints = {
        "--bind": ",".join(service.config.det_bind),
        "--connect": ",".join(service.config.det_connect),
        "--publish": service.config.publish,
        "--snapshot": service.config.snapshot,
    }

    def line() -> str:
        t = pipeline.processed_until
        return (
            f"track: t={t if t != float('-inf') else 0:7.1f} s  "
            f"batches={pipeline.counters['batches']}  tracks={len(pipeline.tracker)}  "
            f"alerts={sum(pipeline.alert_seq.values())}"
        )

    # What exists now (modules, configuration, restored state) lives as long as the
    # process: out of the collector's full passes, whose pause would land on a batch.
    gc.freeze()
    # TrackerService.run logs the loud banner when it runs without authentication.
    try:
        with stop_on_signals(service.stop), ticker(line):
            final = service.run()
    except zmq.ZMQError as exc:
        from replay.cli.common import zmq_error_line

        raise CommandError(zmq_error_line(exc, endpoints)) from None
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
    if alert.get("closest_approach") is not None:
        parts.append(f"came within {alert['closest_approach']:.0f} m")
    parts.append("evidence=" + ",".join(alert.get("evidence", [])))
    if alert.get("snapshot"):
        parts.append("(already open)")
    return " ".join(parts)


class _Watch:
    """Listens for the service's ``status`` beside the alert client, in its own thread.

    The alert stream can be quiet for hours, so silence there says nothing; the
    service's status heartbeat (every couple of seconds) says whether anything is
    listening at the endpoint at all. The first status also names the service's zones,
    against which ``--zone`` is checked. After that it keeps listening: when the
    heartbeat stops for ``--silence`` seconds (or three status intervals, whichever is
    longer) it says so loudly on stderr, and again when the service is back.
    """

    def __init__(self, args: argparse.Namespace, curve: Any, stop: threading.Event):
        self.args = args
        self.curve = curve
        self.stop = stop
        self.problem: str | None = None
        self.silences = 0
        self.heard = False
        self.thread = threading.Thread(target=self._run, name="alerts-watch", daemon=True)

    def _say(self, text: str) -> None:
        # One write: print() sends the newline apart, and another process's log line
        # on the same terminal could land in between.
        sys.stderr.write(f"bufferzone alerts: {text}\n")
        sys.stderr.flush()

    def _run(self) -> None:
        import zmq

        from fusion.messages import WireError, unpack_map

        endpoint = self.args.connect
        ctx = zmq.Context()
        try:
            with ctx.socket(zmq.SUB) as sub:
                sub.setsockopt(zmq.LINGER, 0)
                if self.curve is not None:
                    self.curve.apply_client(sub)
                sub.setsockopt(zmq.SUBSCRIBE, b"status")
                sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat")
                sub.connect(endpoint)
                last = time.monotonic()
                status: dict[str, Any] | None = None
                silent = zones_checked = False
                while not self.stop.is_set():
                    if not sub.poll(100):
                        quiet = time.monotonic() - last
                        if not silent and quiet > self._limit(status):
                            silent = True
                            self.silences += 1
                            if status is None:
                                self._say(
                                    f"nothing heard from {endpoint} in {self.args.silence:g} s; "
                                    f"is 'bufferzone track' running with --publish {endpoint}? "
                                    "(still waiting)"
                                )
                            else:
                                self._say(
                                    f"SERVICE SILENT: no heartbeat from {endpoint} for "
                                    f"{quiet:.0f} s (last status run {status.get('run')}); "
                                    "alerts raised meanwhile are not reaching you (still "
                                    "waiting)"
                                )
                        continue
                    try:
                        message = unpack_map(sub.recv_multipart()[-1])
                    except WireError:
                        continue
                    last = time.monotonic()
                    self.heard = True
                    if silent:
                        silent = False
                        restarted = status is not None and message.get("run") not in (
                            None, status.get("run"))
                        self._say(f"now hearing from {endpoint}"
                                  + (" (the service restarted)" if restarted else ""))
                    if message.get("type") != "heartbeat":  # a status
                        if not zones_checked and "zones" in message:
                            zones_checked = True
                            self._check_zones(message.get("zones"))
                        status = message
                    if message.get("final"):
                        self._say(f"the service at {endpoint} said it is stopping")
        finally:
            ctx.destroy(linger=0)

    def _limit(self, status: dict[str, Any] | None) -> float:
        """Seconds of quiet that count as silence: --silence, or 3 status intervals."""
        interval = (status or {}).get("status_interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool):
            return max(float(self.args.silence), 3.0 * float(interval))
        return float(self.args.silence)

    def _check_zones(self, zones: Any) -> None:
        if not isinstance(zones, list) or not self.args.zone:
            return  # an older service that does not name its zones: nothing to check
        # "sensors" is the service's own zone for sensor liveness alerts
        unknown = [z for z in self.args.zone if z not in zones and z != "sensors"]
        if unknown:
            self.problem = (
                f"unknown zone {', '.join(map(repr, unknown))}: the service at "
                f"{self.args.connect} has {', '.join(zones)}"
            )
            self.stop.set()


def run_alerts(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone alerts``."""
    from fusion.config import ConfigError
    from fusion.messages import WireError
    from fusion.service.client import AlertClient  # keeps run and seq on each alert

    unknown = [k for k in args.kind or () if k not in KINDS + LIVENESS_KINDS]
    if unknown:
        raise CommandError(
            f"unknown alert kind {', '.join(map(repr, unknown))} "
            f"(expected {', '.join(KINDS + LIVENESS_KINDS)})"
        )
    try:
        curve = curve_client_keys(args)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    stop = threading.Event()
    client = AlertClient(
        args.connect,
        args.snapshot,
        args.zone,
        args.kind,
        args.min_severity,
        timeout=args.timeout,
        curve=curve,
        stop=stop,
    )
    watch = _Watch(args, curve, stop)
    watch.thread.start()

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
    except (TimeoutError, WireError) as exc:
        print(f"bufferzone alerts: {exc}", file=sys.stderr)
        return 1
    finally:
        stream.close()  # type: ignore[attr-defined]
        stop.set()
        watch.thread.join(timeout=2.0)
    if watch.problem:
        raise CommandError(watch.problem)
    if not (watch.heard or watch.silences or seen):
        # Stopped (--timeout, Ctrl-C) before the silence notice was due: say it anyway.
        print(f"bufferzone alerts: nothing was heard from {args.connect}"
              + (f", so --zone {', '.join(args.zone)} could not be checked" if args.zone
                 else ""), file=sys.stderr)
    log.info("printed %d alert events; stream: %s", seen, client.stats)
    return 0
