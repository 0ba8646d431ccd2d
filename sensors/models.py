"""Sensor models: from the truth at a measurement time to one frame of detections.

Each model is a generator of :class:`Frame` over the scenario, vectorised over targets
(one numpy pass per frame). Every model has a coverage polygon at each frame, a
probability of detection per class, Poisson clutter uniform inside the coverage,
measurement noise and an update rate; delivery latency is added by
:mod:`sensors.feed`. Detections of a frame are shuffled so their order says nothing
about which are false.

Frames keep ``truth_id`` (the target behind each detection, -1 for clutter) for tests
and scoring; it never goes on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sensors.scenario import DroneSpec, RadarSpec, SatelliteSpec, SensorSpec, UgsSpec
from sensors.shapes import (
    bearing_difference,
    circle,
    polyline_at,
    rectangle,
    sector,
)
from sensors.truth import StateCache, Trajectories


@dataclass(frozen=True, eq=False)
class Frame:
    """One sensor frame before it is put on the wire.

    Attributes
    ----------
    t : float
        Measurement time, seconds.
    z : ndarray, shape (M, 2), float64
    R : ndarray, shape (M, 2, 2), float64
    cls : ndarray, shape (M,), uint8, or None
    conf : ndarray, shape (M,), float32, or None
    coverage : ndarray, shape (K, 2), float64
    truth_id : ndarray, shape (M,), int64
        Target id behind each detection, -1 for a false alarm.
    """

    t: float
    z: np.ndarray
    R: np.ndarray
    cls: np.ndarray | None
    conf: np.ndarray | None
    coverage: np.ndarray
    truth_id: np.ndarray


def frame_times(start: float, period: float, duration: float) -> np.ndarray:
    """Times ``start + k * period`` within ``[0, duration]``, shape (F,)."""
    n = int(np.floor((duration - start) / period + 1e-9)) + 1
    return start + period * np.arange(max(n, 0))


def sensor_frames(spec: SensorSpec, traj: Trajectories | StateCache, duration: float,
                  rng: np.random.Generator) -> Iterator[Frame]:
    """Every frame of one sensor over the scenario, in measurement-time order."""
    if isinstance(spec, RadarSpec):
        return radar_frames(spec, traj, duration, rng)
    if isinstance(spec, DroneSpec):
        return drone_frames(spec, traj, duration, rng)
    if isinstance(spec, SatelliteSpec):
        return satellite_frames(spec, traj, duration, rng)
    if isinstance(spec, UgsSpec):
        return ugs_frames(spec, traj, duration, rng)
    raise TypeError(f"no model for sensor kind {spec.kind!r}")


def _detect(rng: np.random.Generator, pd: tuple[float, ...], cls: np.ndarray,
            covered: np.ndarray) -> np.ndarray:
    """Which targets are detected: covered and a Bernoulli(pd of its class) draw, shape (N,)."""
    return covered & (rng.random(cls.shape[0]) < np.asarray(pd)[cls])


def _labels(rng: np.random.Generator, true_cls: np.ndarray, accuracy: float,
            n_false: int) -> tuple[np.ndarray, np.ndarray]:
    """Reported class and confidence for true detections followed by false alarms.

    A true detection keeps its class with probability ``accuracy`` (confidence
    U(0.6, 0.99)), otherwise it gets one of the other two classes (confidence
    U(0.3, 0.7)). A false alarm gets any class with confidence U(0.2, 0.6).
    """
    m = true_cls.shape[0]
    right = rng.random(m) < accuracy
    other = 1 + (true_cls.astype(np.int64) - 1 + rng.integers(1, 3, m)) % 3
    cls = np.where(right, true_cls, other)
    conf = np.where(right, rng.uniform(0.6, 0.99, m), rng.uniform(0.3, 0.7, m))
    cls_f = rng.integers(1, 4, n_false)
    conf_f = rng.uniform(0.2, 0.6, n_false)
    return (np.concatenate([cls, cls_f]).astype(np.uint8),
            np.concatenate([conf, conf_f]).astype(np.float32))


def _in_rectangle(rng: np.random.Generator, center: np.ndarray, along: np.ndarray,
                  across: np.ndarray, length: float, width: float, n: int) -> np.ndarray:
    """``n`` points uniform in a rectangle given by its centre and unit axes, shape (n, 2)."""
    a = rng.uniform(-length / 2, length / 2, n)
    c = rng.uniform(-width / 2, width / 2, n)
    return center + a[:, None] * along + c[:, None] * across


def _shuffle(rng: np.random.Generator, frame: Frame) -> Frame:
    order = rng.permutation(frame.z.shape[0])
    return Frame(
        frame.t, frame.z[order], frame.R[order],
        None if frame.cls is None else frame.cls[order],
        None if frame.conf is None else frame.conf[order],
        frame.coverage, frame.truth_id[order],
    )


def radar_covariance(r: np.ndarray, b: np.ndarray, sigma_r: float,
                     sigma_b: float) -> np.ndarray:
    """Covariance of a range/bearing measurement converted to east/north.

    The first-order (linearised) conversion: with east = r sin b, north = r cos b,

        J = [[sin b,  r cos b],
             [cos b, -r sin b]]
        R = J diag(sigma_r^2, sigma_b^2) J'

    evaluated at the measured range and bearing, the only values a receiver has
    (Bar-Shalom, Willett & Tian, *Tracking and Data Fusion*, 2011, sec. 9.2). Down
    range and cross range are uncorrelated, so R is diagonal only along the beam.

    Parameters
    ----------
    r : ndarray, shape (M,)
        Range, metres.
    b : ndarray, shape (M,)
        Compass bearing, radians.
    sigma_r : float
        Range standard deviation, metres.
    sigma_b : float
        Bearing standard deviation, radians.

    Returns
    -------
    ndarray, shape (M, 2, 2)
    """
    s, c = np.sin(b), np.cos(b)
    J = np.empty((r.shape[0], 2, 2))
    J[:, 0, 0], J[:, 0, 1] = s, r * c
    J[:, 1, 0], J[:, 1, 1] = c, -r * s
    D = np.array([sigma_r**2, sigma_b**2])
    R = np.einsum("mik,k,mjk->mij", J, D, J)  # R = J D J'
    return 0.5 * (R + R.transpose(0, 2, 1))


def radar_frames(spec: RadarSpec, traj: Trajectories | StateCache, duration: float,
                 rng: np.random.Generator) -> Iterator[Frame]:
    """Scans of a fixed radar: range and bearing of each detected target, converted."""
    pos = np.asarray(spec.position)
    r_min, r_max = spec.range
    coverage = sector(pos, r_min, r_max, spec.azimuth, spec.width)
    sb = np.deg2rad(spec.sigma_bearing)
    for t in frame_times(0.0, 1.0 / spec.rate, duration):
        ids, x, cls = traj.state_at(t)
        d = x[:, :2] - pos
        r = np.hypot(d[:, 0], d[:, 1])
        b = np.degrees(np.arctan2(d[:, 0], d[:, 1]))
        covered = (r >= r_min) & (r <= r_max)
        if spec.width < 360.0:
            covered &= bearing_difference(b, spec.azimuth) <= spec.width / 2
        hit = _detect(rng, spec.pd, cls, covered)
        m = int(hit.sum())
        r_m = r[hit] + spec.sigma_range * rng.standard_normal(m)
        b_m = np.deg2rad(b[hit]) + sb * rng.standard_normal(m)
        # Clutter uniform over the sector's area: r^2 uniform, bearing uniform.
        n_false = int(rng.poisson(spec.clutter))
        r_f = np.sqrt(rng.uniform(r_min**2, r_max**2, n_false))
        half = min(spec.width, 360.0) / 2
        b_f = np.deg2rad(spec.azimuth + rng.uniform(-half, half, n_false))
        r_all = np.maximum(np.concatenate([r_m, r_f]), 1.0)
        b_all = np.concatenate([b_m, b_f])
        z = pos + r_all[:, None] * np.stack([np.sin(b_all), np.cos(b_all)], axis=1)
        R = radar_covariance(r_all, b_all, spec.sigma_range, sb)
        truth_id = np.concatenate([ids[hit], np.full(n_false, -1, np.int64)])
        yield _shuffle(rng, Frame(float(t), z, R, None, None, coverage, truth_id))


def drone_frames(spec: DroneSpec, traj: Trajectories | StateCache, duration: float,
                 rng: np.random.Generator) -> Iterator[Frame]:
    """Camera frames of a patrolling drone: its footprint moves with it."""
    times = frame_times(0.0, 1.0 / spec.rate, duration)
    where, heading = polyline_at(spec.route, spec.phase + spec.speed * times)
    along_len, across_len = spec.footprint
    R1 = np.eye(2) * spec.sigma**2
    for t, c, h in zip(times, where, heading, strict=True):
        ids, x, cls = traj.state_at(t)
        hr = np.deg2rad(h)
        along = np.array([np.sin(hr), np.cos(hr)])
        across = np.array([np.cos(hr), -np.sin(hr)])
        d = x[:, :2] - c
        covered = (np.abs(d @ along) <= along_len / 2) & (np.abs(d @ across) <= across_len / 2)
        hit = _detect(rng, spec.pd, cls, covered)
        m = int(hit.sum())
        z_t = x[hit, :2] + spec.sigma * rng.standard_normal((m, 2))
        coverage = rectangle(c, h, along_len, across_len)
        n_false = int(rng.poisson(spec.clutter))
        z_f = _in_rectangle(rng, c, along, across, along_len, across_len, n_false)
        labels, conf = _labels(rng, cls[hit], spec.class_accuracy, n_false)
        z = np.vstack([z_t, z_f])
        truth_id = np.concatenate([ids[hit], np.full(n_false, -1, np.int64)])
        R = np.broadcast_to(R1, (z.shape[0], 2, 2)).copy()
        yield _shuffle(rng, Frame(float(t), z, R, labels, conf, coverage, truth_id))


def satellite_frames(spec: SatelliteSpec, traj: Trajectories | StateCache, duration: float,
                     rng: np.random.Generator) -> Iterator[Frame]:
    """One wide-swath snapshot per pass; the ground track shifts from pass to pass."""
    h = np.deg2rad(spec.heading)
    across = np.array([np.cos(h), -np.sin(h)])
    R1 = np.eye(2) * spec.sigma**2
    for t in frame_times(spec.first_pass, spec.revisit, duration):
        center = np.asarray(spec.center) + rng.uniform(-1.0, 1.0) * spec.shift * across
        coverage = rectangle(center, spec.heading, spec.length, spec.width)
        ids, x, cls = traj.state_at(t)
        d = x[:, :2] - center
        along = np.array([np.sin(h), np.cos(h)])
        covered = ((np.abs(d @ along) <= spec.length / 2)
                   & (np.abs(d @ across) <= spec.width / 2))
        hit = _detect(rng, spec.pd, cls, covered)
        m = int(hit.sum())
        z_t = x[hit, :2] + spec.sigma * rng.standard_normal((m, 2))
        n_false = int(rng.poisson(spec.clutter))
        z_f = _in_rectangle(rng, center, along, across, spec.length, spec.width, n_false)
        labels = conf = None
        if spec.class_accuracy is not None:
            labels, conf = _labels(rng, cls[hit], spec.class_accuracy, n_false)
        z = np.vstack([z_t, z_f])
        truth_id = np.concatenate([ids[hit], np.full(n_false, -1, np.int64)])
        R = np.broadcast_to(R1, (z.shape[0], 2, 2)).copy()
        yield _shuffle(rng, Frame(float(t), z, R, labels, conf, coverage, truth_id))


def ugs_frames(spec: UgsSpec, traj: Trajectories | StateCache, duration: float,
               rng: np.random.Generator) -> Iterator[Frame]:
    """A seismic/acoustic sensor: at most one detection a frame, at its own position.

    It fires if any target within ``radius`` is detected (each with the pd of its
    class) or a false alarm occurs (probability ``1 - exp(-clutter)``). The covariance
    is ``(radius / 2)^2 I``: the spread of a target uniform over the detection disc.
    """
    pos = np.asarray(spec.position)
    coverage = circle(pos, spec.radius)
    R = np.eye(2)[None] * (spec.radius / 2) ** 2
    z = pos[None, :]
    empty = Frame(0.0, np.empty((0, 2)), np.empty((0, 2, 2)), None, None, coverage,
                  np.empty(0, np.int64))
    for t in frame_times(0.0, 1.0 / spec.rate, duration):
        ids, x, cls = traj.state_at(t)
        d = x[:, :2] - pos
        r = np.hypot(d[:, 0], d[:, 1])
        hit = _detect(rng, spec.pd, cls, r <= spec.radius)
        false_alarm = rng.poisson(spec.clutter) > 0
        if hit.any():
            # Credit the nearest detected target (what an analyst would assume).
            k = np.flatnonzero(hit)[np.argmin(r[hit])]
            yield Frame(float(t), z.copy(), R.copy(), None, None, coverage,
                        np.array([ids[k]], np.int64))
        elif false_alarm:
            yield Frame(float(t), z.copy(), R.copy(), None, None, coverage,
                        np.array([-1], np.int64))
        else:
            yield Frame(float(t), empty.z, empty.R, None, None, coverage, empty.truth_id)
