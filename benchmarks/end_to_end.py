"""End-to-end latency: load generator -> tracker service (its own process) -> subscriber.

Run ``python -m benchmarks.end_to_end`` (``make bench`` does) for the full figures, or
the pytest wrapper ``benchmarks/test_end_to_end.py`` (a short smoke run under
``--benchmark-disable``).

Set-up, all on this machine over ipc sockets:

- the service is ``bufferzone track`` in a separate process with ``reorder_window = 0``
  (the reorder window adds its own length to every latency by design; see README);
- a load generator in this process publishes 10 scans per second of measurement time,
  paced against the wall clock, each holding one detection of every target, so a
  rate of R detections/s means R/10 targets. One target in five drives towards the
  zone, so predicted-incursion and incursion alerts keep coming;
- a subscriber thread timestamps every alert on arrival.

An alert event carries the measurement time ``t`` of the batch whose processing raised
it, so its latency is its arrival time minus the send time of that batch. The service's
``status`` gives the time per stage (decode, reorder wait, tracker, rules, log and
publish) per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from fusion import DetectionBatch, LocalFrame, encode_batch
from fusion.service.client import AlertClient
from tests.sockets import DEADLINE, ServicePublisher, StatusWatch

SCAN_RATE = 10.0  # scans per second of measurement time
ORIGIN = (24.0, 45.0)
RESULTS = Path(__file__).parent / "results"


@dataclass
class LoadResult:
    rate: float
    duration: float
    sent: int
    processed: int
    alerts: int
    alert_gaps: int
    latency_ms: dict[str, float]
    stage_ms: dict[str, float]
    service_latency_ms: dict[str, float]
    rejected: int
    held: bool = field(default=False)


def zone_geojson(frame: LocalFrame, half_width: float) -> dict:
    """A 2 km deep east-west strip across the whole area, as GeoJSON in lon/lat."""
    local = np.array(
        [[-half_width, -1000.0], [half_width, -1000.0], [half_width, 1000.0], [-half_width, 1000.0]]
    )
    ring = frame.to_lonlat(local).tolist()
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "zone-l", "side_names": ["north", "south"]},
                "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]},
            }
        ],
    }


def targets(n: int, duration: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Start positions and velocities of ``n`` targets on a grid south of the zone.

    One in five drives north at 25 m/s from a distance that brings it into the zone at
    a random time within the run, so alerts keep coming however long the run is.
    """
    rng = np.random.default_rng(seed)
    columns = int(np.ceil(np.sqrt(n)))
    half_width = columns * 500.0
    gx, gy = np.meshgrid(np.arange(columns), np.arange(columns))
    start = np.stack([gx.ravel() * 1000.0 - half_width + 250, -2500.0 - gy.ravel() * 1000.0], 1)[:n]
    velocity = np.zeros((n, 2))
    velocity[:, 0] = rng.uniform(-5, 5, n)  # patrolling east-west
    crossers = rng.random(n) < 0.2
    velocity[crossers] = [0.0, 25.0]  # heading north into the zone
    start[crossers, 1] = -1000.0 - 25.0 * rng.uniform(5.0, max(duration, 6.0), crossers.sum())
    return start, velocity, half_width


def run_load(rate: float, duration: float, workdir: Path, seed: int = 0) -> LoadResult:
    """Drive one service process at ``rate`` detections/s for ``duration`` seconds."""
    n = max(int(rate / SCAN_RATE), 1)
    start, velocity, half_width = targets(n, duration, seed)
    frame = LocalFrame(*ORIGIN)
    zones = workdir / f"zones-{int(rate)}.geojson"
    zones.write_text(json.dumps(zone_geojson(frame, half_width)))
    config = workdir / "service.toml"
    # The load's one "radar" sees every target: a deployment with such a sensor raises
    # its budgets (defaults: 5,000 detections a batch, 10,000 a second) the same way.
    config.write_text(
        "[service]\nreorder_window = 0.0\nstatus_interval = 1.0\n"
        f"max_batch_detections = {{ radar = {2 * n} }}\n"
        f"max_detection_rate = {{ radar = {2.0 * rate} }}\n"
    )
    det, pub, snap = (
        f"ipc://{workdir}/{name}-{int(rate)}.sock" for name in ("det", "pub", "snap")
    )
    service = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay.cli",
            "track",
            "--config",
            str(config),
            "--zones",
            str(zones),
            "--origin",
            f"{ORIGIN[0]},{ORIGIN[1]}",
            "--bind",
            det,
            "--publish",
            pub,
            "--snapshot",  # unused here, but on ipc it cannot clash with a TCP port
            snap,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    ctx = zmq.Context()
    arrivals: list[tuple[float, float]] = []  # (arrival wall time, alert t)
    stop = threading.Event()
    client = AlertClient(pub, None, context=ctx, stop=stop)

    def listen() -> None:
        for alert in client:
            arrivals.append((time.perf_counter(), float(alert["t"])))

    listener = threading.Thread(target=listen, daemon=True)
    sent_at: dict[float, float] = {}
    sent = 0
    final_status = None
    baseline = 1  # batches that are not load: the probe
    watch = out = None
    try:
        watch = StatusWatch(ctx, pub)
        watch.next(DEADLINE)  # the service is up
        listener.start()
        if not client.live.wait(DEADLINE):  # its subscription is in: no alert missed
            raise RuntimeError(f"the alert subscriber saw no status within {DEADLINE:g} s")
        # One probe (radar-1's, sequence number 0) counted by the service: the
        # connection is up, and the probe is the only batch that is not load.
        out = ServicePublisher(ctx, det, watch, probe_sensor="radar-1", probe_t=1.0)
        probe_status = out.open()
        R = np.eye(2) * 100.0
        rng = np.random.default_rng(seed + 1)
        scans = int(duration * SCAN_RATE)
        t0 = time.perf_counter()
        for k in range(scans):
            t = 1.0 + k / SCAN_RATE
            z = start + velocity * t + rng.normal(0, 10.0, size=(n, 2))
            batch = DetectionBatch.build("radar-1", "radar", k + 1, t, z, R)
            payload = encode_batch(batch)
            due = t0 + k / SCAN_RATE
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.01))  # pacing the load, not synchronising
            sent_at[t] = time.perf_counter()
            out.send([batch.topic, payload])
            sent += 1
        baseline = probe_status["batches"]
        try:
            final_status = watch.wait(lambda s: s["batches"] >= baseline + sent, DEADLINE)
        except AssertionError:
            final_status = watch.last  # reported below as batches lost: not held
    finally:
        for sock in (out, watch):
            if sock is not None:
                sock.close()
        service.send_signal(signal.SIGINT)
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        stop.set()
        if listener.ident is not None:
            listener.join(10)
        ctx.term()
    latencies = np.array([arrived - sent_at[t] for arrived, t in arrivals if t in sent_at])
    status = final_status or {}
    lat = (
        {
            "p50": float(np.percentile(latencies, 50)) * 1e3,
            "p99": float(np.percentile(latencies, 99)) * 1e3,
            "max": float(latencies.max()) * 1e3,
        }
        if latencies.size
        else {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    )
    processed = int(status.get("batches", baseline)) - baseline
    result = LoadResult(
        rate=rate,
        duration=duration,
        sent=sent,
        processed=processed,
        alerts=int(latencies.size),
        alert_gaps=int(client.stats.get("gaps", 0)),
        latency_ms=lat,
        stage_ms=status.get("stage_ms_per_batch", {}),
        service_latency_ms=status.get("latency_ms", {}),
        rejected=int(status.get("rejected_total", 0)),
    )
    # "Held": nothing lost anywhere and the tail stays under one scan interval x 10.
    result.held = (
        processed == sent
        and result.rejected == 0
        and result.alert_gaps == 0
        and latencies.size > 0
        and lat["p99"] <= 1000.0
    )
    return result


def report(results: list[LoadResult], command: str) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        "# End-to-end latency",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average at the end {os.getloadavg()[0]:.2f}. Command: `{command}`.",
        "",
        "Latency = alert arrival at a subscriber minus the send time of the batch whose "
        "processing raised it (ipc sockets, service in its own process, reorder window 0).",
        "",
        "| detections/s | targets | duration s | batches sent / processed | alerts | "
        "p50 ms | p99 ms | max ms | held |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.rate:,.0f} | {int(r.rate / SCAN_RATE):,} | {r.duration:.0f} | {r.sent} / "
            f"{r.processed} | {r.alerts} | {r.latency_ms['p50']:.1f} | {r.latency_ms['p99']:.1f} "
            f"| {r.latency_ms['max']:.1f} | {'yes' if r.held else 'no'} |"
        )
    lines += [
        "",
        "Where the time goes (ms per batch, service-side means):",
        "",
        "| detections/s | " + " | ".join(sorted({k for r in results for k in r.stage_ms})) + " |",
    ]
    stages = sorted({k for r in results for k in r.stage_ms})
    lines.append("|---:|" + "---:|" * len(stages))
    for r in results:
        lines.append(
            f"| {r.rate:,.0f} | " + " | ".join(f"{r.stage_ms.get(s, 0):.2f}" for s in stages) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="1000,10000,100000", help="detections/s, comma-separated"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per rate")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bz-e2e-") as tmp:
        for rate in (float(r) for r in args.rates.split(",")):
            print(f"[e2e] {rate:,.0f} detections/s for {args.duration:g} s ...", flush=True)
            results.append(run_load(rate, args.duration, Path(tmp)))
            print(f"[e2e]   {results[-1]}", flush=True)
    command = "python -m benchmarks.end_to_end " + " ".join(sys.argv[1:])
    text = report(results, command.strip())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "end_to_end.md").write_text(text)
    (RESULTS / "end_to_end.json").write_text(json.dumps([r.__dict__ for r in results], indent=1))
    print(text)
    refused = [r for r in results if r.rejected or r.processed < r.sent]
    if refused:
        # A rate whose batches were refused or lost measured nothing: fail the run.
        print("[e2e] FAILED: " + ", ".join(
            f"{r.rate:,.0f}/s processed {r.processed} of {r.sent}, rejected {r.rejected}"
            for r in refused), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
