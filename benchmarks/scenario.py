"""Steady-state tracking scenes shared by the benchmarks and ``benchmarks.run``.

A scene is ``n`` targets spread at random over a square of side ``sqrt(n) * 1000`` m
(about one target per square kilometre, whatever ``n``), each moving at a constant
velocity drawn from N(0, 5 m/s) per axis, seen once a second by one all-seeing sensor
with 10 m noise (``R = 100 I``) plus uniform clutter. After ``WARMUP_SCANS`` scans every
target has a confirmed track, and each later scan is the steady state the targets in
the brief refer to: about one detection per track, plus clutter that starts and kills
tentative tracks.

Everything is seeded, so two runs see the same scans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fusion import DetectionBatch, Tracker

NOISE_STD = 10.0  # m, per axis
WARMUP_SCANS = 8
CLUTTER_FRACTION = 0.02  # clutter detections per scan, as a share of the targets


@dataclass
class Scene:
    """Ground truth for ``n`` targets and a generator of their detection scans.

    Parameters
    ----------
    n : int
        Number of targets.
    seed : int
        Seed of every random draw of this scene.
    clutter_fraction : float
        Expected clutter detections per scan, as a share of ``n``.
    """

    n: int
    seed: int = 0
    clutter_fraction: float = CLUTTER_FRACTION
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.side = np.sqrt(self.n) * 1000.0
        self.start = self.rng.uniform(0.0, self.side, size=(self.n, 2))
        self.velocity = self.rng.normal(0.0, 5.0, size=(self.n, 2))
        self.R = np.eye(2) * NOISE_STD**2
        self.k = 0

    def truth(self, t: float) -> np.ndarray:
        """Target positions at time ``t``, shape (n, 2)."""
        return self.start + self.velocity * t

    def scan(self) -> DetectionBatch:
        """The next 1 Hz full-coverage scan: every target once, plus clutter."""
        t = float(self.k)
        rng = self.rng
        z = self.truth(t) + rng.normal(0.0, NOISE_STD, size=(self.n, 2))
        clutter = rng.uniform(0.0, self.side, size=(rng.poisson(self.clutter_fraction * self.n), 2))
        detections = np.vstack([z, clutter])
        detections = detections[rng.permutation(detections.shape[0])]
        batch = DetectionBatch.build("radar-1", "radar", self.k, t, detections, self.R)
        self.k += 1
        return batch

    def drone_frame(self, t: float, n_detections: int = 10) -> DetectionBatch:
        """A small frame: a square footprint around ``n_detections`` nearby targets.

        The footprint is the bounding box (plus a 100 m margin) of the targets nearest
        to the scene centre, so the frame sees those targets and a few neighbours.
        """
        truth = self.truth(t)
        centre = np.full(2, self.side / 2)
        nearest = np.argsort(np.hypot(*(truth - centre).T))[:n_detections]
        z = truth[nearest] + self.rng.normal(0.0, NOISE_STD, size=(n_detections, 2))
        lo, hi = z.min(axis=0) - 100.0, z.max(axis=0) + 100.0
        coverage = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        return DetectionBatch.build(
            "uav-1", "drone", 0, t, z, self.R, classes=np.full(n_detections, 2), coverage=coverage
        )


def steady_tracker(n: int, seed: int = 0, warmup: int = WARMUP_SCANS, make=Tracker):
    """A tracker (``make()``) fed ``warmup`` scans of a fresh ``n``-target scene.

    Returns
    -------
    tracker
        Whatever ``make`` built, after the warm-up scans.
    scene : Scene
        Its next :meth:`Scene.scan` is the first steady-state scan.
    """
    scene = Scene(n, seed)
    tracker = make()
    for _ in range(warmup):
        tracker.process(scene.scan())
    return tracker, scene


def strip_zone(scene: Scene, width: float = 3000.0):
    """A buffer-zone strip ``width`` metres wide across the middle of the scene, east-west.

    Like the default scenario's zone (about 3 km wide, a tenth of the area), so about
    a tenth of the targets are inside it and more are within the rules' reach of it.
    """
    from fusion.alerting.zones import Zone, ZoneSet

    mid, half = scene.side / 2, width / 2
    shell = [
        [-1000.0, mid - half],
        [scene.side + 1000.0, mid - half],
        [scene.side + 1000.0, mid + half],
        [-1000.0, mid + half],
    ]
    return ZoneSet([Zone.from_local("strip", np.array(shell))])


class AlertedScene:
    """A steady ``n``-target scene with a tracker and an alert engine (default rules).

    :meth:`scan` runs the tracker on the next scan and returns what the engine's step
    needs, so the two can be timed apart on the same scans, as the service runs them
    (one rules evaluation per batch).
    """

    def __init__(self, n: int, seed: int = 3, warmup: int = WARMUP_SCANS + 6):
        from fusion.alerting.engine import AlertEngine

        self.tracker, self.scene = steady_tracker(n, seed)
        self.last_process_s = 0.0  # Tracker.process time of the latest scan()
        self.engine = AlertEngine(strip_zone(self.scene))
        for _ in range(warmup):  # let alerts open, so updates and evidence are exercised
            self.engine_step(*self.scan())

    def scan(self) -> tuple:
        """Track the next scan; returns the engine step's arguments."""
        batch = self.scene.scan()
        start = time.perf_counter()
        result = self.tracker.process(batch)
        # Timed here too, so the engine's benchmark can time the tracker on its own scans.
        self.last_process_s = time.perf_counter() - start
        snap = self.tracker.confirmed(at=self.tracker.latest_time)
        return (self.tracker.latest_time, snap, result.updated, batch.sensor_id, result.deleted)

    def engine_step(self, t, snap, updated, sensor_id, deleted) -> list:
        return self.engine.step(
            t,
            snap.ids,
            snap.x,
            snap.P,
            snap.cls,
            snap.conf,
            updated_ids=updated,
            sensor_id=sensor_id,
            deleted_ids=deleted,
        )
