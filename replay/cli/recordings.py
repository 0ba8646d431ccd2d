"""``bufferzone record``, ``replay``, ``simulate`` and ``eval``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from dataclasses import replace
from typing import Any

import zmq

from fusion.config import ConfigError
from fusion.service import ServiceConfig
from fusion.tracking.tracker import TrackerConfig
from replay.cli.common import parse_speed, stop_on_signals
from replay.recording import RecordingError

log = logging.getLogger("bufferzone.replay")


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser(
        "record",
        help="record feeds (and truth) to a file, as received",
        description="Subscribe to publishers and append every message (arrival time, topic, "
        "payload) to a recording. Ctrl-C closes it cleanly; a crash leaves a file readable "
        "up to its last whole frame.",
    )
    r.add_argument(
        "--connect",
        action="append",
        required=True,
        metavar="ENDPOINT",
        help="publisher to subscribe to (repeatable)",
    )
    r.add_argument("--out", required=True, metavar="FILE", help="recording to create")
    r.add_argument(
        "--scenario",
        metavar="NAME|TOML",
        help="scenario being published: its name, zones and origin go in the header",
    )
    r.add_argument(
        "--topic",
        action="append",
        metavar="PREFIX",
        help="record only these topic prefixes (default: everything)",
    )
    r.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    r.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="stop after S seconds without a message, once one has arrived",
    )
    r.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    r.set_defaults(func=run_record)

    p = subparsers.add_parser(
        "replay",
        help="publish a recording again, or run the tracker on it offline",
        description="--publish: send the recording again with its original pacing scaled by "
        "--speed, on an XPUB that waits for a subscriber. --offline: run tracker and alert "
        "rules in-process, as fast as possible, and write tracks and alerts per step to "
        "--out (see replay.offline for the format).",
    )
    p.add_argument("file", help="recording")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--publish", metavar="ENDPOINT", help="bind here and publish")
    mode.add_argument("--offline", action="store_true", help="track in-process, write --out")
    p.add_argument(
        "--speed",
        type=parse_speed,
        default=1.0,
        metavar="X|max",
        help="multiple of the recorded pace, or 'max' (default 1)",
    )
    p.add_argument(
        "--topic",
        action="append",
        metavar="PREFIX",
        help="publish only these topic prefixes (default: everything)",
    )
    p.add_argument("--wait-subscribers", type=int, default=1, metavar="N")
    p.add_argument("--wait-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--out", metavar="RESULT", help="result file (with --offline)")
    p.add_argument("--force", action="store_true", help="overwrite RESULT if it exists")
    p.add_argument(
        "--tracker",
        choices=("bufferzone", "baseline"),
        default="bufferzone",
        help="baseline: one filterpy filter per track, 2-of-3 confirmation, no alerts",
    )
    p.add_argument("--config", metavar="TOML", help="file with [service] and [tracker] tables")
    p.add_argument("--rules", metavar="TOML", help="alert rules (default: the shipped rules)")
    p.add_argument(
        "--scenario",
        metavar="NAME|TOML",
        help="zones and origin from this scenario (default: the recording's header)",
    )
    p.add_argument("--zones", metavar="GEOJSON", help="zones as GeoJSON in lon/lat")
    p.add_argument("--origin", metavar="LON,LAT", help="origin of the local frame (with --zones)")
    p.add_argument(
        "--step",
        type=float,
        default=1.0,
        metavar="S",
        help="measurement-time seconds between track pictures (default 1)",
    )
    p.set_defaults(func=run_replay)

    s = subparsers.add_parser(
        "simulate",
        help="write a scenario's feed and truth straight to a recording, without sockets",
    )
    s.add_argument("scenario", help="scenario TOML, or 'default'")
    s.add_argument("--out", required=True, metavar="FILE", help="recording to create")
    s.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    s.set_defaults(func=run_simulate)

    e = subparsers.add_parser(
        "eval",
        help="score an offline replay's result against ground truth",
        description="GOSPA per step (localisation, missed, false), fragmentation and id "
        "switches; alert recall, precision and latency against the truth's incursions.",
    )
    e.add_argument("result", help="result of 'bufferzone replay --offline'")
    e.add_argument(
        "--truth",
        metavar="RECORDING_OR_NPZ",
        help="truth source (default: the truth frames in RESULT)",
    )
    e.add_argument(
        "--cutoff",
        "-c",
        type=float,
        default=100.0,
        metavar="M",
        help="GOSPA cut-off distance, metres (default 100)",
    )
    e.add_argument("--order", "-p", type=float, default=2.0, help="GOSPA order p (default 2)")
    e.add_argument("--alpha", type=float, default=2.0, help="GOSPA alpha (default 2)")
    e.add_argument(
        "--tolerance",
        type=float,
        default=2.0,
        metavar="S",
        help="slack around an incursion when matching alerts (default 2 s)",
    )
    e.add_argument(
        "--predicted-lead",
        type=float,
        default=60.0,
        metavar="S",
        help="how early a predicted_incursion may open and match (default 60 s)",
    )
    e.add_argument(
        "--end-grace",
        type=float,
        default=10.0,
        metavar="S",
        help="incursions entering this close to the end are not scored (default 10 s)",
    )
    e.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    e.add_argument("--report", metavar="FILE.png", help="write the picture")
    e.set_defaults(func=run_eval)


def run_record(args: argparse.Namespace) -> int:
    from replay.record import record

    metadata: dict[str, Any] = {
        "kind": "recording",
        "writer": "bufferzone record",
        "endpoints": list(args.connect),
    }
    if args.scenario:
        from replay.scenario_meta import scenario_metadata
        from sensors.scenario import ScenarioError, load_scenario

        try:
            # Without the truth: simulating it can take longer than a publisher waits
            # for its subscriber; eval simulates the incursions from `source` later.
            metadata["scenario"] = scenario_metadata(load_scenario(args.scenario))
        except ScenarioError as exc:
            print(f"bufferzone record: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()
    topics = tuple(t.encode("ascii") for t in args.topic) if args.topic else (b"",)
    try:
        with zmq.Context() as ctx, stop_on_signals(stop):
            stats = record(
                ctx,
                args.connect,
                args.out,
                metadata=metadata,
                stop=stop,
                subscribe=topics,
                max_messages=args.count,
                duration=args.duration,
                idle_timeout=args.idle_timeout,
                overwrite=args.force,
            )
    except (RecordingError, OSError, ValueError) as exc:
        print(f"bufferzone record: {exc}", file=sys.stderr)
        return 2
    print(
        f"recorded {stats.frames} messages to {args.out} ({stats.ended}"
        + (f", {stats.malformed} malformed skipped" if stats.malformed else "")
        + ")",
        file=sys.stderr,
    )
    return 0


def _offline_zones(args: argparse.Namespace) -> Any:
    if not (args.scenario or args.zones):
        return None  # from the recording's header
    from replay.cli.service import _zones_and_frame

    return _zones_and_frame(args)


def run_replay(args: argparse.Namespace) -> int:
    if args.publish:
        from replay.player import play

        stop = threading.Event()
        topics = tuple(t.encode("ascii") for t in args.topic) if args.topic else ()
        try:
            with zmq.Context() as ctx, stop_on_signals(stop):
                stats = play(
                    ctx,
                    args.file,
                    args.publish,
                    speed=args.speed,
                    topics=topics,
                    stop=stop,
                    wait_subscribers=args.wait_subscribers,
                    wait_timeout=args.wait_timeout,
                )
        except (RecordingError, OSError) as exc:
            print(f"bufferzone replay: {exc}", file=sys.stderr)
            return 2
        print(
            f"published {stats.sent} messages" + (" (stopped)" if stats.stopped else ""),
            file=sys.stderr,
        )
        return 0

    from replay.offline import replay_offline

    if not args.out:
        print("bufferzone replay: --offline needs --out RESULT", file=sys.stderr)
        return 2
    try:
        tracker_config = TrackerConfig.from_toml(args.config) if args.config else TrackerConfig()
        service_config = ServiceConfig.from_toml(args.config) if args.config else ServiceConfig()
        zones = _offline_zones(args)
        summary = replay_offline(
            args.file,
            args.out,
            tracker=args.tracker,
            zones=zones,
            tracker_config=tracker_config,
            service_config=replace(service_config),
            rules=args.rules,
            step=args.step,
            overwrite=args.force,
        )
    except (ConfigError, RecordingError, OSError, ValueError) as exc:
        print(f"bufferzone replay: {exc}", file=sys.stderr)
        return 2
    report = summary.report
    print(f"{args.file}: {report.message() if report else '?'}", file=sys.stderr)
    print(
        f"wrote {args.out}: {summary.steps} track pictures, {summary.alerts} alert events, "
        f"{summary.truth} truth samples from {summary.detections} detection messages",
        file=sys.stderr,
    )
    return 0 if report is None or report.complete else 1


def run_simulate(args: argparse.Namespace) -> int:
    from replay.record import write_simulation
    from sensors.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario)
        frames = write_simulation(scenario, args.out, overwrite=args.force)
    except (ScenarioError, RecordingError, OSError) as exc:
        print(f"bufferzone simulate: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {frames} messages of scenario {scenario.name!r} to {args.out}", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from replay.scoring.evaluate import evaluate, format_summary, load_truth, read_result

    try:
        result = read_result(args.result)
        truth = load_truth(args.truth) if args.truth else None
        ev = evaluate(
            result,
            truth,
            c=args.cutoff,
            p=args.order,
            alpha=args.alpha,
            tolerance=args.tolerance,
            predicted_lead=args.predicted_lead,
            end_grace=args.end_grace,
        )
    except (RecordingError, OSError, ValueError) as exc:
        print(f"bufferzone eval: {exc}", file=sys.stderr)
        return 2
    print(format_summary(ev.summary))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(ev.summary, fh, indent=2, sort_keys=True)
            fh.write("\n")
    if args.report:
        from replay.scoring.report import write_report

        write_report(ev, args.report)
        print(f"report written to {args.report}", file=sys.stderr)
    return 0
