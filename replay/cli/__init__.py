"""The ``bufferzone`` command line: one entry point, one sub-command per job.

Each command group is one module of this package with ``register(subparsers)``: ``demo``,
``recordings`` (record, replay, simulate, eval), ``keys``, ``service`` (track, alerts) and
``sensors``; ``common`` holds what they share. This module only collects them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that each add sub-commands. Order is the order of ``bufferzone --help``.
COMMAND_MODULES = (
    "replay.cli.demo",
    "replay.cli.recordings",
    "replay.cli.keys",
    "replay.cli.service",
    "replay.cli.sensors",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bufferzone",
        description="Sensor fusion and zone-incursion alerts for a ceasefire buffer zone.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args) or 0)

