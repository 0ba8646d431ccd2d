"""The ``bufferzone`` command line: one entry point, one sub-command per job.

Each command group is one module of this package with ``register(subparsers)``: ``demo``,
``recordings`` (record, replay, simulate, eval), ``keys``, ``service`` (track, alerts) and
``sensors``; ``common`` holds what they share. This module only collects them.

Registering a command imports only ``argparse`` and its module's light top: each
command imports numpy, scipy, shapely, pyproj or ZeroMQ when it runs, so ``--help``
and a mistyped option answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys

from replay.cli.common import CommandError, join_dashed_values

# Modules that each add sub-commands. Order is the order of ``bufferzone --help``.
COMMAND_MODULES = (
    "replay.cli.demo",
    "replay.cli.recordings",
    "replay.cli.keys",
    "replay.cli.service",
    "replay.cli.sensors",
    "replay.cli.ops",
    "replay.cli.evidence",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bufferzone",
        description="Sensor fusion and zone-incursion alerts for a ceasefire buffer zone.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("bufferzone")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit status.

    A :class:`~replay.cli.common.CommandError` from a command is printed as one line,
    ``bufferzone COMMAND: message``, with exit status 2; Ctrl-C before a command has
    installed its own handler exits 130 without a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(join_dashed_values(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"bufferzone {args.command}: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130

