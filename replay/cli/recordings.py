"""``bufferzone record``, ``replay``, ``simulate`` and ``eval``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import warnings
from dataclasses import replace
from typing import Any

from replay.cli.common import (
    CommandError,
    add_scenario_argument,
    check_bindable,
    load_scenario_checked,
    parse_endpoint,
    parse_lonlat,
    parse_speed,
    scenario_of,
    stop_on_signals,
)

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
        type=parse_endpoint,
        metavar="ENDPOINT",
        help="publisher to subscribe to (repeatable)",
    )
    r.add_argument("--out", required=True, metavar="FILE", help="recording to create")
    add_scenario_argument(
        r, "scenario being published (optional): its name, zones and origin go in the header",
        required=False,
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
        description="--publish / --connect: send the recording again with its original "
        "pacing scaled by --speed, on an XPUB that waits for a subscriber (--publish binds, "
        "for 'track --connect'; --connect connects to a 'track --bind'). --offline: run "
        "tracker and alert rules in-process, as fast as possible, and write tracks and "
        "alerts per step to --out (see replay.offline for the format).",
    )
    p.add_argument("file", help="recording")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--publish", metavar="ENDPOINT", type=parse_endpoint,
                      help="bind here and publish (a tracker connects to it)")
    mode.add_argument("--connect", metavar="ENDPOINT", type=parse_endpoint,
                      help="connect to a tracker that binds here ('track --bind') and publish")
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
    p.add_argument("--wait-subscribers", type=int, default=1, metavar="N",
                   help="subscription frames to wait for before publishing (default 1; 0: none)")
    p.add_argument("--wait-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for them before starting anyway (default 10)")
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
    p.add_argument("--origin", metavar="LON,LAT", type=parse_lonlat,
                   help="origin of the local frame (with --zones), e.g. --origin -5.35,36.10")
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
        description="Simulate a scenario's truth and every sensor's detections and write "
        "them, in delivery order, to a recording with the scenario (zones, origin, "
        "incursions) in its header: what 'sensors --truth' and 'record' would capture at "
        "speed 1, bit for bit the same on every run, in seconds instead of the scenario's "
        "duration. Replay it with 'replay --offline' and score it with 'eval'. The "
        "scenario format is described in docs/SCENARIOS.md.",
    )
    add_scenario_argument(s, "scenario TOML, or 'default' for the embedded one")
    s.add_argument("--out", required=True, metavar="FILE", help="recording to create")
    s.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    s.set_defaults(func=run_simulate)

    e = subparsers.add_parser(
        "eval",
        help="score an offline replay's result against ground truth",
        description="GOSPA per step (localisation, missed, false), fragmentation and id "
        "switches; alert recall, precision and latency against the truth's incursions "
        "(incursion, predicted incursion, exit, loitering; lost-inside alerts are checked "
        "for a target really inside). Exits 1 when RESULT is incomplete (a replay that "
        "failed part-way), 2 when it cannot be scored.",
    )
    e.add_argument("result", help="result of 'bufferzone replay --offline' (.bzres)")
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
    e.add_argument("--report", metavar="FILE.png",
                   help="write a one-page report: map (local metres and lon/lat) with zones, "
                   "sensors, truth, tracks and alerts; scores; GOSPA over time")
    e.add_argument("--partial", action="store_true",
                   help="score an incomplete result anyway (exit status 0)")
    e.set_defaults(func=run_eval)


def run_record(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone record``."""
    import zmq

    from replay.progress import ticker
    from replay.record import RecordStats, record
    from replay.recording import RecordingError

    metadata: dict[str, Any] = {
        "kind": "recording",
        "writer": "bufferzone record",
        "endpoints": list(args.connect),
    }
    scenario_name = scenario_of(args)
    if scenario_name:
        from replay.scenario_meta import scenario_metadata

        # Without the truth: simulating it can take longer than a publisher waits
        # for its subscriber; eval simulates the incursions from `source` later.
        metadata["scenario"] = scenario_metadata(load_scenario_checked(scenario_name))
    stop = threading.Event()
    topics = tuple(t.encode("ascii") for t in args.topic) if args.topic else (b"",)
    stats = RecordStats()

    def line() -> str:
        return f"record: {stats.frames} messages to {args.out}"

    try:
        with zmq.Context() as ctx, stop_on_signals(stop), ticker(line):
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
                stats=stats,
            )
    except (RecordingError, OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except zmq.ZMQError as exc:
        raise CommandError(f"cannot connect to {', '.join(args.connect)}: {exc}") from None
    print(
        f"recorded {stats.frames} messages to {args.out} ({stats.ended}"
        + (f", {stats.malformed} malformed skipped" if stats.malformed else "")
        + ")",
        file=sys.stderr,
    )
    return 0


def _offline_zones(args: argparse.Namespace) -> Any:
    if not (args.scenario or args.zones):
        if args.origin:
            raise CommandError("--origin goes with --zones")
        return None  # from the recording's header
    from replay.cli.service import _zones_and_frame

    return _zones_and_frame(args)


def _publish_recording(args: argparse.Namespace) -> int:
    import zmq

    from replay.player import play
    from replay.recording import RecordingError

    endpoint = args.publish or args.connect
    if args.publish:
        check_bindable([args.publish])
    stop = threading.Event()
    topics = tuple(t.encode("ascii") for t in args.topic) if args.topic else ()
    try:
        with zmq.Context() as ctx, stop_on_signals(stop):
            stats = play(
                ctx,
                args.file,
                endpoint,
                bind=args.publish is not None,
                speed=args.speed,
                topics=topics,
                stop=stop,
                wait_subscribers=args.wait_subscribers,
                wait_timeout=args.wait_timeout,
            )
    except (RecordingError, OSError) as exc:
        raise CommandError(str(exc)) from None
    except zmq.ZMQError as exc:
        verb = "bind" if args.publish else "connect to"
        hint = (
            " (already in use: a tracker bound there? then use --connect instead of --publish)"
            if exc.errno == zmq.EADDRINUSE
            else ""
        )
        raise CommandError(f"cannot {verb} {endpoint}: {exc}{hint}") from None
    print(
        f"published {stats.sent} messages" + (" (stopped)" if stats.stopped else ""),
        file=sys.stderr,
    )
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone replay``."""
    if args.publish or args.connect:
        return _publish_recording(args)

    from fusion.config import ConfigError
    from fusion.service import ServiceConfig
    from fusion.tracking.tracker import TrackerConfig
    from replay.offline import replay_offline
    from replay.recording import RecordingError, RecordingWarning

    if not args.out:
        raise CommandError("--offline needs --out RESULT")
    try:
        tracker_config = TrackerConfig.from_toml(args.config) if args.config else TrackerConfig()
        service_config = ServiceConfig.from_toml(args.config) if args.config else ServiceConfig()
        zones = _offline_zones(args)
        with warnings.catch_warnings():
            # A cut-off recording is reported below, with what it means for the result.
            warnings.simplefilter("ignore", RecordingWarning)
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
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        print(f"\nbufferzone replay: interrupted; {args.out} holds only part of {args.file} "
              "('eval' refuses it unless given --partial)", file=sys.stderr, flush=True)
        return 130
    report = summary.report
    print(report.message() if report else f"{args.file}: ?", file=sys.stderr)
    print(
        f"wrote {args.out}: {summary.steps} track pictures, {summary.alerts} alert events, "
        f"{summary.truth} truth samples from {summary.detections} detection messages",
        file=sys.stderr,
    )
    internal = int((summary.status.get("rejected") or {}).get("internal", 0))
    if internal:
        # The live service survives a bug on one batch by counting it; an offline run
        # exists to be scored, and a result that silently dropped batches would score
        # as a plausible but wrong picture.
        print(
            f"bufferzone replay: {internal} batch(es) hit an internal error (a bug; the "
            f"tracebacks are logged above); {args.out} lacks them and is not a fair result",
            file=sys.stderr,
        )
        return 1
    if report is not None and not report.complete:
        print(
            f"bufferzone replay: {args.out} covers only the readable part of {args.file}; "
            "'eval' refuses it unless given --partial",
            file=sys.stderr,
        )
        return 1
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone simulate``."""
    from replay.record import write_simulation
    from replay.recording import RecordingError

    scenario = load_scenario_checked(scenario_of(args))
    try:
        frames = write_simulation(scenario, args.out, overwrite=args.force)
    except (RecordingError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {frames} messages of scenario {scenario.name!r} to {args.out}", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone eval``."""
    from replay.recording import RecordingError, RecordingWarning
    from replay.scoring.evaluate import (
        ScoringError,
        check_scorable,
        evaluate,
        format_summary,
        load_truth,
        read_result,
    )

    try:
        with warnings.catch_warnings(record=True) as cut:
            warnings.simplefilter("always", RecordingWarning)
            result = read_result(args.result)
            truth = load_truth(args.truth) if args.truth else None
        notes = check_scorable(result, truth, args.result, args.truth, partial=args.partial)
        # A cut-off result is refused or warned about by check_scorable; a cut-off
        # --truth recording only here.
        notes += [f"--truth {w.message}" for w in cut if issubclass(w.category, RecordingWarning)
                  and str(w.message) != result.report_message]
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
    except (ScoringError, RecordingError, OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    for note in notes:
        print(f"bufferzone eval: warning: {note}", file=sys.stderr)
    print(format_summary(ev.summary))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(ev.summary, fh, indent=2, sort_keys=True)
            fh.write("\n")
    if args.report:
        from replay.scoring.report import write_report

        write_report(ev, args.report)
        print(f"report written to {args.report}", file=sys.stderr)
    return 1 if result.incomplete else 0
