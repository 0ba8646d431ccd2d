"""What several ``bufferzone`` commands share: argument parsers, scenario loading, signals."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def parse_speed(text: str) -> float | None:
    """``--speed`` values: a positive multiple of real time, or ``max`` (None)."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number or 'max', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0, got {text!r}")
    return value


@contextmanager
def stop_on_signals(stop: threading.Event | Callable[[], object]) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request for the duration, then restore the handlers.

    Parameters
    ----------
    stop : threading.Event or callable
        An event to set, or a function to call (for example ``TrackerService.stop``).
        Signals reach only the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    request = stop.set if isinstance(stop, threading.Event) else stop

    def handler(signum: int, _frame: object) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        request()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class CommandError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""


# Transports ZeroMQ understands; anything else in front of "://" is a typo.
_TRANSPORTS = ("tcp", "ipc", "inproc", "pgm", "epgm", "ws", "wss", "udp", "vmci")


def parse_endpoint(text: str) -> str:
    """``--bind``/``--connect``/``--publish`` values: a ZeroMQ endpoint, checked up front.

    ZeroMQ reports a malformed endpoint as a bare ``Invalid argument`` deep inside a
    socket call; checked here, the message names the value and the likely fix.
    """
    transport, sep, address = text.partition("://")
    if not sep:
        hint = f"tcp://{text}" if ":" in text else f"tcp://{text}:PORT or ipc://{text}"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ZeroMQ endpoint (transport://address); did you mean {hint}?"
        )
    if transport not in _TRANSPORTS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown transport {transport!r} (expected tcp, ipc or inproc)"
        )
    if not address:
        raise argparse.ArgumentTypeError(f"{text!r} has no address after '://'")
    if transport == "tcp":
        host, colon, port = address.rpartition(":")
        if not colon or not host:
            raise argparse.ArgumentTypeError(
                f"{text!r} needs host:port, e.g. tcp://127.0.0.1:5556 or tcp://*:5556"
            )
        if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
            raise argparse.ArgumentTypeError(f"{text!r}: port {port!r} is not 1-65535 or *")
    return text


def parse_lonlat(text: str) -> tuple[float, float]:
    """``--origin LON,LAT``: two numbers, longitude first, within their ranges."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lon, lat = (float(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LON,LAT (two numbers, e.g. 33.37,35.17), got {text!r}"
        ) from None
    if not (-180.0 <= lon <= 180.0 and -90.0 < lat < 90.0):
        hint = "; did you swap lat/lon?" if -90.0 < lon < 90.0 and -180 <= lat <= 180 else ""
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid LON,LAT{hint}")
    return lon, lat


# Options whose value may start with "-" (a western longitude, a southern latitude).
# argparse takes "-5.35,36.10" for an option because of the comma and fails with
# "expected one argument"; ``--origin=-5.35,36.10`` works, so the split form is joined.
VALUE_MAY_START_WITH_DASH = ("--origin",)


def join_dashed_values(argv: list[str]) -> list[str]:
    """Rewrite ``--origin -5.35,36.10`` as ``--origin=-5.35,36.10`` before parsing."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_MAY_START_WITH_DASH and i + 1 < len(argv) and argv[i + 1][:1] == "-":
            nxt = argv[i + 1]
            if len(nxt) > 1 and (nxt[1].isdigit() or nxt[1] == "."):
                out.append(f"{arg}={nxt}")
                i += 2
                continue
        out.append(arg)
        i += 1
    return out


def load_scenario_checked(name: str | None) -> Any:
    """Load a scenario and refuse zones that cannot belong to its origin.

    Raises
    ------
    CommandError
        For any scenario problem, as one line.
    """
    from fusion.geo import ImplausibleCoordinates, check_near_origin, geojson_lonlat
    from sensors.scenario import ScenarioError, load_scenario

    if name is None:
        raise CommandError("a scenario is needed: a TOML file, or 'default' for the embedded one")
    try:
        scenario = load_scenario(name)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    for feature in scenario.zones["features"]:
        zone = feature["properties"].get("name")
        try:
            check_near_origin(
                geojson_lonlat(feature), scenario.origin,
                f"scenario {scenario.name!r} zone {zone!r}",
            )
        except ImplausibleCoordinates as exc:
            raise CommandError(str(exc)) from None
    return scenario


def add_scenario_argument(p: argparse.ArgumentParser, help: str, required: bool = True) -> None:
    """The scenario, positional or as ``--scenario`` (both spellings work everywhere)."""
    p.add_argument("scenario_pos", nargs="?", metavar="SCENARIO", help=help)
    p.add_argument("--scenario", dest="scenario_opt", metavar="SCENARIO",
                   help="the same, as an option")
    p.set_defaults(_scenario_required=required)


def scenario_of(args: argparse.Namespace, default: str | None = None) -> str | None:
    """The scenario given positionally or with ``--scenario``; refuse two different ones."""
    pos, opt = getattr(args, "scenario_pos", None), getattr(args, "scenario_opt", None)
    if pos and opt and pos != opt:
        raise CommandError(f"two scenarios given: {pos!r} and --scenario {opt!r}")
    chosen = pos or opt or default
    if chosen is None and getattr(args, "_scenario_required", False):
        raise CommandError("a scenario is needed: a TOML file, or 'default' for the embedded one")
    return chosen


def zmq_error_line(exc: Exception, endpoints: dict[str, Any]) -> str:
    """One line for a ZeroMQ bind/connect failure, naming the endpoints in play."""
    import errno

    code = getattr(exc, "errno", None)
    named = ", ".join(f"{k} {v}" for k, v in endpoints.items() if v)
    if code == errno.EADDRINUSE:
        return (
            f"an endpoint is already in use ({named}): another process has bound it; "
            "stop it, pick another port, or connect instead of binding"
        )
    return f"ZeroMQ refused an endpoint ({named}): {exc}"


def check_bindable(endpoints: list[str]) -> None:
    """Fail early, naming the endpoint, when a tcp endpoint to bind is already taken.

    A plain socket with ``SO_REUSEADDR`` (as ZeroMQ's listener) is bound and closed at
    once, which is synchronous, unlike closing a ZeroMQ socket. Only tcp: binding an ipc
    path that another process holds would take it over. Addresses this cannot resolve
    (interface names) are left to ZeroMQ.

    Raises
    ------
    CommandError
        ``"cannot bind tcp://...: address already in use ..."``.
    """
    import errno
    import socket

    for endpoint in endpoints:
        if not endpoint or not endpoint.startswith("tcp://"):
            continue
        host, _, port = endpoint[len("tcp://"):].rpartition(":")
        if port == "*" or not port.isdigit():
            continue
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        host = host.strip("[]")
        host = {"*": "0.0.0.0"}.get(host, host) if family == socket.AF_INET else (
            "::" if host == "*" else host
        )
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
            probe.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"cannot bind {endpoint}: address already in use (another process is "
                    "bound there: stop it, choose another port, or connect instead)"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise CommandError(
                    f"cannot bind {endpoint}: {host} is not an address of this machine"
                ) from None
        finally:
            probe.close()
