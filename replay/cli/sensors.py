"""``bufferzone sensors``: run every sensor of a scenario and publish their detections."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Iterator

from replay.cli.common import (
    CommandError,
    add_scenario_argument,
    check_bindable,
    load_scenario_checked,
    parse_endpoint,
    parse_speed,
    scenario_of,
    stop_on_signals,
)

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sensors`` sub-command."""
    p = subparsers.add_parser(
        "sensors",
        help="simulate a scenario's sensors and publish their detections over ZeroMQ",
        description=(
            "Run every sensor of a scenario in one process and publish each frame as a "
            "DetectionBatch on det.<kind>.<sensor id>, at measurement time plus the "
            "sensor's latency, scaled by --speed."
        ),
    )
    add_scenario_argument(p, "scenario TOML file, or 'default' for the embedded one")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--bind", metavar="ENDPOINT", type=parse_endpoint,
                       help="bind the publisher, e.g. tcp://*:5556")
    where.add_argument("--connect", metavar="ENDPOINT", type=parse_endpoint,
                       help="connect to, e.g. tcp://tracker:5556")
    p.add_argument("--speed", type=parse_speed, default=1.0, metavar="X",
                   help="multiple of real time, or 'max' for as fast as possible (default 1)")
    p.add_argument("--truth", action="store_true", help="also publish ground truth on truth.<name>")
    p.add_argument("--truth-out", metavar="FILE",
                   help="write ground truth and the incursion list to FILE (.npz)")
    p.add_argument("--wait-subscribers", type=int, default=1, metavar="N",
                   help="subscription frames to wait for before publishing (default 1; 0: none)")
    p.add_argument("--wait-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for them before starting anyway (default 10)")
    p.add_argument("--linger", type=float, default=2.0, metavar="S",
                   help="seconds allowed at exit to flush queued messages (default 2)")
    p.add_argument("--key", metavar="FILE",
                   help="CURVE key pair of this publisher "
                   "(<name>.key_secret from 'bufferzone keys')")
    p.add_argument("--server-key", metavar="FILE",
                   help="the tracker service's public key (<name>.key); needed with --key")
    p.set_defaults(func=run)


def _counted(
    messages: Iterator[tuple[float, bytes, bytes]], count: list[float]
) -> Iterator[tuple[float, bytes, bytes]]:
    """Pass messages through, keeping ``[sent, last delivery time]`` for the progress line."""
    for message in messages:
        count[0] += 1
        count[1] = message[0]
        yield message


def run(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone sensors``; returns the exit code (0 also on Ctrl-C)."""
    import zmq

    from fusion.config import ConfigError
    from fusion.security import load_keys
    from replay.progress import ticker
    from sensors.feed import iter_messages
    from sensors.publisher import publish
    from sensors.truth import simulate_truth

    try:
        scenario = load_scenario_checked(scenario_of(args))
        if args.bind:
            check_bindable([args.bind])  # before the truth, which takes a while
    except CommandError as exc:
        # Logged, not printed: the message lands in the same stream as the service logs.
        log.error("%s", exc)
        return 2
    curve = None
    if args.key or args.server_key:
        if not (args.key and args.server_key):
            log.error("--key and --server-key go together")
            return 2
        try:
            curve = load_keys(args.key, args.server_key)
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
    started = time.perf_counter()
    truth = simulate_truth(scenario)
    log.info(
        "scenario %r: %d targets, %d sensors, %.0f s, %d incursions (truth in %.2f s)",
        scenario.name, len(truth.trajectories or ()), len(scenario.sensors), scenario.duration,
        len(truth.incursions), time.perf_counter() - started,
    )
    if args.truth_out:
        truth.save(args.truth_out)
        log.info("truth written to %s", args.truth_out)
    stop = threading.Event()
    count = [0.0, 0.0]
    messages = _counted(iter_messages(scenario, truth, include_truth=args.truth), count)
    endpoint = args.bind or args.connect

    def line() -> str:
        return (f"sensors: t={count[1]:6.0f} s of {scenario.duration:.0f} s, "
                f"{int(count[0])} messages sent to {endpoint}")

    try:
        with zmq.Context() as ctx, stop_on_signals(stop), ticker(line):
            publish(
                ctx, messages, endpoint, bind=args.bind is not None,
                speed=args.speed, stop=stop, wait_subscribers=args.wait_subscribers,
                wait_timeout=args.wait_timeout, linger_ms=int(args.linger * 1000), curve=curve,
            )
    except zmq.ZMQError as exc:
        log.error("cannot %s %s: %s", "bind" if args.bind else "connect to", endpoint, exc)
        return 2
    return 0
