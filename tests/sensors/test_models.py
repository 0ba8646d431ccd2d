"""Sensor statistics: detection rate, noise, clutter and coverage match the configuration.

Targets stand still (see ``static_targets``) so each frame is an independent trial.
Bounds are 4-sigma binomial/Poisson bounds and 99.9 % chi-square bounds: with a fixed
seed they either always pass or always fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy.stats import chi2

from sensors.models import drone_frames, radar_frames, satellite_frames, ugs_frames
from sensors.scenario import DroneSpec, RadarSpec, SatelliteSpec, UgsSpec
from sensors.shapes import bearing_difference, racetrack
from sensors.truth import Trajectories

PERSON, VEHICLE, DRONE = 1, 2, 3


def static_targets(points: np.ndarray, cls: np.ndarray) -> Trajectories:
    """Targets standing still at ``points`` (N, 2) for all time, classes ``cls`` (N,)."""
    n = points.shape[0]
    P = np.repeat(np.asarray(points, float)[:, None, :], 2, axis=1)
    T = np.tile([-1.0, 1e9], (n, 1))
    return Trajectories(
        ids=np.arange(1, n + 1, dtype=np.int64), cls=np.asarray(cls, np.uint8), T=T, P=P,
        V=np.zeros_like(P), t_birth=T[:, 0].copy(), t_death=T[:, 1].copy(),
        convoy=np.full(n, -1, np.int64),
    )


def _binomial_ok(hits: int, trials: int, p: float) -> bool:
    return abs(hits - trials * p) <= 4 * np.sqrt(trials * p * (1 - p)) + 1


def _poisson_ok(count: int, mean: float) -> bool:
    return abs(count - mean) <= 4 * np.sqrt(mean) + 1


def _chi2_mean_ok(values: np.ndarray, dof: int) -> bool:
    """Mean of ``values`` (each chi2(dof)) inside the two-sided 99.9 % band."""
    n = len(values)
    lo, hi = chi2.ppf([0.0005, 0.9995], dof * n) / n
    return lo <= values.mean() <= hi


def _stack(frames):
    """Concatenate frames' detections with the frame index of each."""
    z = np.concatenate([f.z for f in frames])
    R = np.concatenate([f.R for f in frames])
    tid = np.concatenate([f.truth_id for f in frames])
    k = np.concatenate([np.full(len(f.z), i) for i, f in enumerate(frames)])
    return z, R, tid, k


@pytest.fixture
def radar_setup():
    rng = np.random.default_rng(1)
    pts = rng.uniform([-12000, -2000], [12000, 12000], (500, 2))
    traj = static_targets(pts, rng.integers(1, 4, 500))
    spec = RadarSpec(
        id="r", kind="radar", pd=(0.0, 0.7, 0.9, 0.6), clutter=5.0, latency=(0.0, 0.0),
        position=(0.0, 0.0), rate=1.0, range=(500.0, 10000.0), azimuth=30.0, width=100.0,
        sigma_range=15.0, sigma_bearing=0.3,
    )
    frames = list(radar_frames(spec, traj, 199.0, np.random.default_rng(2)))
    return spec, traj, pts, frames


def test_radar_detects_at_pd_only_inside_its_sector(radar_setup):
    spec, traj, pts, frames = radar_setup
    assert len(frames) == 200
    r = np.hypot(pts[:, 0], pts[:, 1])
    b = np.degrees(np.arctan2(pts[:, 0], pts[:, 1]))
    covered = (r >= 500) & (r <= 10000) & (bearing_difference(b, 30.0) <= 50.0)
    assert 50 < covered.sum() < 450
    _, _, tid, _ = _stack(frames)
    true = tid[tid >= 0]
    assert covered[true - 1].all(), "a target outside the sector was detected"
    poly = shapely.Polygon(frames[0].coverage)
    assert shapely.contains_xy(poly, pts[true - 1, 0], pts[true - 1, 1]).all()
    hits = np.bincount(true - 1, minlength=len(pts))
    for c in (PERSON, VEHICLE, DRONE):
        mask = covered & (traj.cls == c)
        assert _binomial_ok(int(hits[mask].sum()), int(mask.sum()) * len(frames), spec.pd[c])


def test_radar_clutter_rate_and_placement(radar_setup):
    spec, _, _, frames = radar_setup
    z, _, tid, _ = _stack(frames)
    false = z[tid < 0]
    assert _poisson_ok(len(false), spec.clutter * len(frames))
    r = np.hypot(false[:, 0], false[:, 1])
    b = np.degrees(np.arctan2(false[:, 0], false[:, 1]))
    assert ((r >= 500 - 1e-6) & (r <= 10000 + 1e-6)).all()
    assert (bearing_difference(b, 30.0) <= 50.0 + 1e-9).all()
    # Uniform over the area: r^2 is uniform between the range limits.
    u = (r**2 - 500**2) / (10000**2 - 500**2)
    assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(u))


def test_radar_range_and_bearing_noise_match_sigmas(radar_setup):
    spec, _, pts, frames = radar_setup
    z, _, tid, _ = _stack(frames)
    truth = pts[tid[tid >= 0] - 1]
    zt = z[tid >= 0]
    dr = np.hypot(zt[:, 0], zt[:, 1]) - np.hypot(truth[:, 0], truth[:, 1])
    signed_db = ((np.degrees(np.arctan2(zt[:, 0], zt[:, 1]))
                  - np.degrees(np.arctan2(truth[:, 0], truth[:, 1])) + 180) % 360) - 180
    assert _chi2_mean_ok((dr / spec.sigma_range) ** 2, 1)
    assert _chi2_mean_ok((signed_db / spec.sigma_bearing) ** 2, 1)


def test_radar_converted_covariance_is_consistent(radar_setup):
    """NEES of converted detections against their own R is chi-square with 2 dof."""
    _, _, pts, frames = radar_setup
    z, R, tid, _ = _stack(frames)
    true = tid >= 0
    e = z[true] - pts[tid[true] - 1]
    Rt = R[true]
    nees = np.einsum("mi,mij,mj->m", e, np.linalg.inv(Rt), e)
    assert _chi2_mean_ok(nees, 2)
    # The covariance is not diagonal: it is elongated across the beam.
    assert np.abs(Rt[:, 0, 1]).max() > 1.0
    np.testing.assert_array_equal(Rt[:, 0, 1], Rt[:, 1, 0])
    assert (np.linalg.eigvalsh(Rt) > 0).all()


def test_drone_footprint_pd_noise_labels_and_clutter():
    rng = np.random.default_rng(3)
    pts = rng.uniform([-3000, -1500], [3000, 1500], (600, 2))
    cls = rng.integers(1, 4, 600)
    traj = static_targets(pts, cls)
    spec = DroneSpec(
        id="d", kind="drone", pd=(0.0, 0.8, 0.8, 0.8), clutter=0.5, latency=(0.0, 0.0),
        route=racetrack(np.zeros(2), 90.0, 4000.0, 1000.0), speed=30.0, phase=0.0, rate=4.0,
        footprint=(1000.0, 600.0), sigma=20.0, class_accuracy=0.85,
    )
    frames = list(drone_frames(spec, traj, 150.0, np.random.default_rng(4)))
    trials = hits = 0
    errors, right, labelled = [], 0, 0
    for f in frames:
        poly = shapely.Polygon(f.coverage)
        inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
        true = f.truth_id >= 0
        assert inside[f.truth_id[true] - 1].all(), "a target outside the footprint was detected"
        trials += int(inside.sum())
        hits += int(true.sum())
        errors.append(f.z[true] - pts[f.truth_id[true] - 1])
        right += int((f.cls[true] == cls[f.truth_id[true] - 1]).sum())
        labelled += int(true.sum())
        assert (f.conf >= 0).all() and (f.conf <= 1).all()
    assert trials > 2000
    assert _binomial_ok(hits, trials, 0.8)
    assert _binomial_ok(right, labelled, 0.85)
    e = np.concatenate(errors)
    assert _chi2_mean_ok((e**2).sum(axis=1) / spec.sigma**2, 2)
    n_false = sum(int((f.truth_id < 0).sum()) for f in frames)
    assert _poisson_ok(n_false, spec.clutter * len(frames))
    # The footprint moves with the drone.
    centres = np.array([f.coverage.mean(axis=0) for f in frames])
    assert np.ptp(centres[:, 0]) > 3000


def test_satellite_snapshots_per_pass_with_small_error():
    rng = np.random.default_rng(5)
    pts = rng.uniform([-8000, -5000], [8000, 5000], (1000, 2))
    traj = static_targets(pts, np.full(1000, VEHICLE))
    spec = SatelliteSpec(
        id="s", kind="satellite", pd=(0.0, 0.5, 0.95, 0.3), clutter=10.0, latency=(30.0, 60.0),
        revisit=20.0, first_pass=10.0, center=(0.0, 0.0), heading=90.0, length=12000.0,
        width=6000.0, shift=500.0, sigma=5.0, class_accuracy=None,
    )
    frames = list(satellite_frames(spec, traj, 400.0, np.random.default_rng(6)))
    assert [f.t for f in frames] == [10.0 + 20.0 * k for k in range(20)]
    trials = hits = 0
    errors = []
    for f in frames:
        inside = shapely.contains_xy(shapely.Polygon(f.coverage), pts[:, 0], pts[:, 1])
        true = f.truth_id >= 0
        assert inside[f.truth_id[true] - 1].all()
        assert f.cls is None
        trials += int(inside.sum())
        hits += int(true.sum())
        errors.append(f.z[true] - pts[f.truth_id[true] - 1])
    assert _binomial_ok(hits, trials, 0.95)
    e = np.concatenate(errors)
    assert _chi2_mean_ok((e**2).sum(axis=1) / 25.0, 2)
    assert _poisson_ok(sum(int((f.truth_id < 0).sum()) for f in frames), 10.0 * len(frames))


def test_ugs_reports_at_its_own_position_with_low_pd_for_people():
    pts = np.array([[50.0, 0.0], [1000.0, 0.0]])  # one person in range, one far off
    traj = static_targets(pts, np.array([PERSON, VEHICLE]))
    spec = UgsSpec(id="u", kind="ugs", pd=(0.0, 0.25, 0.9, 0.05), clutter=0.0,
                   latency=(0.0, 0.0), position=(0.0, 0.0), radius=150.0, rate=1.0)
    frames = list(ugs_frames(spec, traj, 2999.0, np.random.default_rng(7)))
    fired = np.array([len(f.z) for f in frames])
    assert set(fired) <= {0, 1}
    assert _binomial_ok(int(fired.sum()), len(frames), 0.25)
    z = np.concatenate([f.z for f in frames])
    assert (z == 0.0).all()
    R = frames[int(np.argmax(fired))].R[0]
    np.testing.assert_allclose(R, np.eye(2) * 75.0**2)
    assert all((f.truth_id != 2).all() for f in frames)


def test_ugs_false_alarms_follow_the_clutter_rate():
    traj = static_targets(np.array([[5000.0, 0.0]]), np.array([VEHICLE]))
    spec = UgsSpec(id="u", kind="ugs", pd=(0.0, 0.3, 0.9, 0.05), clutter=0.1,
                   latency=(0.0, 0.0), position=(0.0, 0.0), radius=150.0, rate=1.0)
    frames = list(ugs_frames(spec, traj, 2999.0, np.random.default_rng(8)))
    fired = sum(len(f.z) for f in frames)
    assert _binomial_ok(fired, len(frames), 1 - np.exp(-0.1))
