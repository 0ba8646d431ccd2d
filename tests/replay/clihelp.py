"""Helpers for the command-line tests: the CLI in a child process, and what a refusal looks like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.scenarios import TINY  # noqa: F401  (the command-line tests' scenario)

# The checkout under test: children import this tree, not whatever is installed.
REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``bufferzone ARGS`` in a child process and wait for it (bounded)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    return subprocess.run(
        [sys.executable, "-m", "replay.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


def spawn_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """Start ``bufferzone ARGS`` in a child process; the caller stops it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    return subprocess.Popen(
        [sys.executable, "-m", "replay.cli", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit status 2, no traceback, and the last stderr line names the problem."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, last
    return last
