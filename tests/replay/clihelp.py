"""Helpers for the command-line tests: the CLI in a child process, and what a refusal looks like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# 60 s, a crossing vehicle, a prober that turns back, a few walkers, one radar; zone
# "zone-t" is 6 km east-west and 600 m wide around the origin.
TINY = """
name = "tiny"
seed = 5
duration = 60.0
truth_dt = 1.0
origin = [24.0, 45.0]
area = [[-4000.0, -4000.0], [4000.0, 4000.0]]

[[zones]]
name = "zone-t"
sides = ["north", "south"]
local = [[-3000.0, -300.0], [3000.0, -300.0], [3000.0, 300.0], [-3000.0, 300.0]]

[[targets]]
name = "walkers"
cls = "person"
behaviour = "wander"
count = 3
offset = [600.0, 1500.0]
birth = [-10.0, 0.0]

[[targets]]
name = "crosser"
cls = "vehicle"
behaviour = "cross"
side = "south"
along = 0.5
offset = 500.0
speed = 20.0
birth = 0.0

[[sensors]]
id = "radar-1"
kind = "radar"
position = [0.0, -2500.0]
range = [50.0, 5000.0]
width = 140.0
rate = 1.0
pd = 0.95
clutter = 1.0
sigma_range = 10.0
sigma_bearing = 0.2
latency = [0.1, 0.3]
"""

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
