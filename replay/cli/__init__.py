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
import warnings
from collections.abc import Callable
from typing import TextIO

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
    # On a terminal, sensors/record/track redraw a status line in place; a log record
    # first clears it, or it would be glued to the end of that line.
    clear = "\r\x1b[K" if sys.stderr.isatty() else ""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=clear + "%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    shown = warnings.showwarning
    if not args.verbose:
        warnings.showwarning = _one_line(args.command, clear)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"bufferzone {args.command}: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        warnings.showwarning = shown


def _one_line(command: str, clear: str) -> Callable[..., None]:
    """``warnings.showwarning`` for a command-line user: one line, no source excerpt.

    Python's default shows the file, line number and source line of the code that
    warned (``for frame in reader:``), which means nothing to someone who ran
    ``bufferzone``; ``-v`` keeps the default.
    """

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        print(f"{clear}bufferzone {command}: warning: {message}", file=file or sys.stderr,
              flush=True)

    return show

