"""The README's examples run as written, top to bottom (issue 16).

Every ``bufferzone`` command in the README's shell blocks must parse; then the usage
sections are run in order in a temporary directory, each command as written except
for three substitutions that keep the test short and independent of this machine: the
README's ports become free random ports, the embedded 15-minute scenario becomes a
60-second one with the same zone name, and ``.venv/bin/bufferzone`` is this checkout.
Long-running commands (``track``, the ``&`` ones, ``alerts``) run in the background and
are stopped at the end; the service is awaited through its status messages, never by
sleeping.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from replay.cli import build_parser
from replay.cli.common import join_dashed_values
from tests.replay.clihelp import REPO, TINY

README = (REPO / "README.md").read_text(encoding="utf-8")
# Sections a user runs by hand; the benchmark and make targets are tested elsewhere.
SECTIONS = ("## Subscribe to alerts", "## Record, replay and score",
            "## Authentication and failures")
# The README's scenario is the embedded default (zone "zone-a"); the test's is 60 s long.
SMALL = TINY.replace('name = "tiny"', 'name = "small"').replace('"zone-t"', '"zone-a"')
TIMEOUT = 60.0


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def _blocks(text: str, lang: str = "") -> list[str]:
    """The fenced blocks of ``text`` whose info string is ``lang`` ("" for plain)."""
    out: list[str] = []
    body: list[str] | None = None
    info = ""
    for line in text.splitlines(keepends=True):
        if not line.startswith("```"):
            if body is not None:
                body.append(line)
        elif body is None:
            body, info = [], line[3:].strip()
        else:
            if info == lang:
                out.append("".join(body))
            body = None
    return out


def _commands(block: str) -> list[list[str]]:
    """The ``bufferzone`` command lines of a shell block, continuations joined."""
    joined = block.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith(".venv/bin/bufferzone"):
            out.append(shlex.split(line))
    return out


def _all_commands() -> list[list[str]]:
    return [c for title in SECTIONS for b in _blocks(_section(title)) for c in _commands(b)]


def test_every_readme_command_parses():
    # Every shell block of the README (not only the sections run below: the map, ATAK
    # and disputes ones too) and of docs/SCENARIOS.md.
    scenarios_doc = (REPO / "docs" / "SCENARIOS.md").read_text(encoding="utf-8")
    commands = [c for text in (README, scenarios_doc) for b in _blocks(text)
                for c in _commands(b)]
    assert len(commands) >= len(_all_commands()) + 10
    parser = build_parser()
    for argv in commands:
        args = [a for a in argv[1:] if a != "&"]
        if "..." in args:
            args = [a for a in args if a != "..."]  # "track ... --security": the options shown
        parser.parse_args(join_dashed_values(args))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Runner:
    """Runs README command lines with the test's substitutions, in ``work``."""

    def __init__(self, work: Path):
        self.work = work
        self.ports: dict[str, str] = {}
        self.background: list[subprocess.Popen] = []
        self.env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        (work / "small.toml").write_text(SMALL)

    def argv(self, readme_argv: list[str]) -> list[str]:
        out = [sys.executable, "-m", "replay.cli"]
        for arg in readme_argv[1:]:
            if arg == "&":
                continue
            arg = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{self._port(m[1])}", arg)
            out.append("small.toml" if arg == "default" else arg)
        return out

    def _port(self, readme_port: str) -> str:
        if readme_port not in self.ports:
            self.ports[readme_port] = str(_free_port())
        return self.ports[readme_port]

    def run(self, readme_argv: list[str]) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(readme_argv), cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, f"{shlex.join(readme_argv)}:\n{proc.stderr}"
        return proc

    def start(self, readme_argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(self.argv(readme_argv), cwd=self.work, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.background.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> tuple[int, str, str]:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, out, err

    def stop_all(self) -> None:
        for proc in reversed(self.background):
            if proc.poll() is None:
                self.stop(proc)


def _wait_for_status(endpoint: str) -> None:
    """Block until the service at ``endpoint`` publishes a status (bounded)."""
    ctx = zmq.Context()
    try:
        with ctx.socket(zmq.SUB) as sub:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"status")
            sub.connect(endpoint)
            assert sub.poll(int(TIMEOUT * 1e3)), f"no status from {endpoint}"
    finally:
        ctx.term()


def _by_subcommand(commands: list[list[str]], name: str) -> list[list[str]]:
    return [c for c in commands if c[1] == name]


@pytest.mark.slow
def test_readme_usage_runs_top_to_bottom(tmp_path):
    subscribe = [c for b in _blocks(_section(SECTIONS[0])) for c in _commands(b)]
    record = [c for b in _blocks(_section(SECTIONS[1])) for c in _commands(b)]
    auth = [c for b in _blocks(_section(SECTIONS[2])) for c in _commands(b)]
    r = _Runner(tmp_path)
    try:
        # Subscribe to alerts: the service, then (with a subscriber listening) the sensors.
        (track,) = _by_subcommand(subscribe, "track")
        service = r.start(track)
        publish = r.argv(track)[r.argv(track).index("--publish") + 1]
        _wait_for_status(publish)
        (alerts,) = _by_subcommand(subscribe, "alerts")
        subscriber = r.start(alerts)
        (sensors,) = _by_subcommand(subscribe, "sensors")
        r.run(sensors)
        code, printed, err = r.stop(subscriber)
        assert code == 0 and "Traceback" not in err, err
        assert "INCURSION" in printed or "incursion" in printed, err

        # From Python: the in-process tracker runs; the client's import works.
        python = _blocks(_section(SECTIONS[0]), "python")
        assert len(python) == 2
        exec(compile(python[1], "README tracker example", "exec"), {})
        client_import = python[0].splitlines()[0]
        exec(compile(client_import, "README client import", "exec"), {})

        # Record, replay and score, in the README's order.
        live_sensors, live_record = record[0], record[1]
        feed = r.start(live_sensors)
        r.run(live_record)
        code, _, err = r.stop(feed)
        assert code == 0, err
        simulate, replay_live, offline, evaluate = record[2:6]
        r.run(simulate)
        # "into a freshly started service": the one above has seen these sensors.
        code, _, err = r.stop(service)
        assert code == 0 and "Traceback" not in err, err
        service = r.start(track)
        _wait_for_status(publish)
        r.run(replay_live)
        r.run(offline)
        scored = r.run(evaluate)
        assert "GOSPA" in scored.stdout
        for name in ("live.bzrec", "default.bzrec", "default.bzres", "eval.json",
                     "report.png", "alerts.log"):
            assert (tmp_path / name).stat().st_size > 0, name

        # Authentication: key pairs (the other two lines need a full set-up or minutes).
        (keys,) = _by_subcommand(auth, "keys")
        r.run(keys)
        assert (tmp_path / "keys" / "ops.key_secret").exists()
        code, _, err = r.stop(service)
        assert code == 0 and "Traceback" not in err, err
    finally:
        r.stop_all()
