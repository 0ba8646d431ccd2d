"""``bufferzone alerts`` keeps the wire's run/seq in --json, and says loudly when the
service goes silent and when it is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.pipes import PipeLines

DEADLINE = 20.0


def test_alerts_json_keeps_run_and_seq_and_reports_a_silent_service(fake_service):
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "alerts", "--connect", fake_service.pub_endpoint,
         "--json", "--silence", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        # the alert client and the heartbeat watch have both subscribed
        fake_service.wait_subscribers(
            need={b"alert.": 1, b"heartbeat": 1, b"status": 2}, timeout=DEADLINE)
        fake_service.status()
        fake_service.alert("zone-a:incursion:7:0")
        deadline = time.monotonic() + DEADLINE
        out, err = PipeLines(proc.stdout), PipeLines(proc.stderr)
        line = out.until(lambda s: s.startswith("{"), deadline)
        alert = json.loads(line)
        assert alert["alert_id"] == "zone-a:incursion:7:0"
        assert alert["run"] == "run-1" and alert["seq"] == 1
        # the service stops (no more status): said on stderr, loudly. Wait for the
        # command's own heartbeat watch (the client's log says so too, on its own clock,
        # and under load either may come first): "now hearing" follows only from it.
        line = err.until(lambda s: "SERVICE SILENT: no heartbeat" in s, deadline)
        assert fake_service.pub_endpoint in line
        fake_service.status()
        err.until(lambda s: "now hearing" in s, deadline)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
