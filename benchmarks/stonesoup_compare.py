"""The same steady-state scans through Stone Soup's GNN tracker and through ours.

``python -m benchmarks.stonesoup_compare [--n 300]`` (needs ``pip install .[compare]``;
the test extra installs it too). Stone Soup is composed the way its documentation
composes a GNN tracker: Kalman predictor and updater, a Mahalanobis
``DistanceHypothesiser`` gated at the same chi-square threshold, the 2-D assignment
associator with a k-d tree pre-gate (``DetectionKDTreeGNN2D``), a multi-measurement
initiator and an update-time-steps deleter. Models match ours as closely as the two
libraries allow: constant velocity with acceleration noise of the same strength per
axis (Stone Soup's is the continuous white-noise form, ours the discrete one), the
same measurement noise and scans (``benchmarks.scenario.Scene``).
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np

from benchmarks.scenario import WARMUP_SCANS, Scene
from fusion import Tracker
from fusion.tracking.gating import gate_threshold

RESULTS = Path(__file__).parent / "results"


def stonesoup_tracker(accel_var: float, noise_var: float, gate_probability: float):
    """Stone Soup components for a GNN tracker; returns a per-scan step function."""
    from stonesoup.dataassociator.tree import DetectionKDTreeGNN2D
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import (
        CombinedLinearGaussianTransitionModel,
        ConstantVelocity,
    )
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater

    transition = CombinedLinearGaussianTransitionModel(
        [ConstantVelocity(accel_var), ConstantVelocity(accel_var)]
    )
    measurement = LinearGaussian(ndim_state=4, mapping=(0, 2), noise_covar=np.eye(2) * noise_var)
    predictor = KalmanPredictor(transition)
    updater = KalmanUpdater(measurement)
    gate = float(np.sqrt(gate_threshold(gate_probability)))
    hypothesiser = DistanceHypothesiser(predictor, updater, Mahalanobis(), missed_distance=gate)
    associator = DetectionKDTreeGNN2D(hypothesiser, predictor, updater, max_distance=500.0)
    deleter = UpdateTimeStepsDeleter(time_steps_since_update=5)
    prior = GaussianState(np.zeros((4, 1)), np.diag([noise_var, 15.0**2, noise_var, 15.0**2]))
    initiator = MultiMeasurementInitiator(
        prior, deleter, DetectionKDTreeGNN2D(hypothesiser, predictor, updater, max_distance=500.0),
        updater, measurement, min_points=4,
    )
    tracks: set = set()
    epoch = datetime.datetime(2026, 1, 1)

    def step(batch) -> int:
        nonlocal tracks
        when = epoch + datetime.timedelta(seconds=batch.t)
        detections = {
            Detection(z.reshape(2, 1), timestamp=when, measurement_model=measurement)
            for z in batch.z
        }
        associations = associator.associate(tracks, detections, when)
        used = set()
        for track, hypothesis in associations.items():
            if hypothesis:
                track.append(updater.update(hypothesis))
                used.add(hypothesis.measurement)
            else:
                track.append(hypothesis.prediction)
        tracks -= deleter.delete_tracks(tracks)
        tracks |= initiator.initiate(detections - used, when)
        return len(tracks)

    return step


def compare(n: int, measured_scans: int = 3) -> dict[str, float]:
    """Median seconds per scan for both trackers on the same scans of ``n`` targets."""
    scene = Scene(n, seed=4)
    scans = [scene.scan() for _ in range(WARMUP_SCANS + measured_scans)]
    ours = Tracker()
    theirs = stonesoup_tracker(ours.config.accel_std**2, 100.0, ours.config.gate_probability)
    times: dict[str, list[float]] = {"bufferzone": [], "stonesoup": []}
    stonesoup_tracks = 0
    for k, batch in enumerate(scans):
        started = time.perf_counter()
        ours.process(batch)
        mid = time.perf_counter()
        stonesoup_tracks = theirs(batch)
        end = time.perf_counter()
        if k >= WARMUP_SCANS:
            times["bufferzone"].append(mid - started)
            times["stonesoup"].append(end - mid)
    result = {name: float(np.median(values)) for name, values in times.items()}
    result["ratio"] = result["stonesoup"] / result["bufferzone"]
    result["tracks_bufferzone"] = float(len(ours.confirmed()))
    result["tracks_stonesoup"] = float(stonesoup_tracks)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="targets (default 300)")
    args = parser.parse_args()
    result = compare(args.n)
    text = (
        "# Stone Soup comparison\n\n"
        f"Steady state, {args.n} targets, 1 detection each per scan + 2 % clutter; "
        f"median of 3 scans after {WARMUP_SCANS} warm-up scans "
        f"(`python -m benchmarks.stonesoup_compare --n {args.n}`).\n\n"
        "| tracker | ms per scan | tracks at the end |\n|---|---:|---:|\n"
        f"| bufferzone | {result['bufferzone'] * 1e3:.2f} | {result['tracks_bufferzone']:.0f} |\n"
        f"| Stone Soup GNN (DetectionKDTreeGNN2D) | {result['stonesoup'] * 1e3:.1f} | "
        f"{result['tracks_stonesoup']:.0f} |\n\n"
        f"Stone Soup / bufferzone: **{result['ratio']:.0f}x**.\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stonesoup.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
