"""Track accuracy against Stone Soup's GNN tracker on scenarios made by Stone Soup.

``python -m benchmarks.accuracy [--quick]`` (``make bench`` runs it; Stone Soup comes
from the ``compare`` extra). Three scenarios, each fed in the same run to Stone Soup's
GNN tracker (2-of-3 confirmation, deletion after 5 scans without an update) and to
bufferzone's in-process :class:`fusion.Tracker` at its defaults:

* ``cv-100`` and ``cv-1000``: truth from Stone Soup's ``MultiTargetGroundTruthSimulator``
  (constant velocity, births and deaths), detections from its
  ``SimpleDetectionSimulator`` over 40 x 20 km: Pd 0.9, 20 m noise, 50 clutter per scan;
* ``multi-sensor``: 100 targets (same truth simulator) seen by three radars whose
  sectors have terrain shadows, two drones with moving footprints and a satellite that
  joins two thirds of the way through; detections drawn here, per sensor, with its own
  Pd, noise and clutter. Stone Soup gets each second's detections as one scan (it has no
  notion of coverage), bufferzone one batch per sensor with its coverage.

Scored per second with GOSPA (p = 1, c = 500 m, alpha = 2; ``replay.scoring.gospa``
agrees with Stone Soup's ``GOSPAMetric`` to 1e-11): its localisation / missed / false
parts, false and missed tracks per scan, id switches (the track assigned to a truth
changes), and for the multi-sensor scene the targets missed inside coverage (all of
them, and those inside for at least ``SETTLE`` scans, which a tracker has had time to
confirm: a target the late satellite sees for the first time is not yet trackable) and
the coverage gaps a target came back from under its old track id.

Each scene also prints its two-look floor (:func:`two_look_misses`): the targets not
yet detected twice, which any tracker that reports a target from its second detection
misses however well it associates, and the GOSPA that leaves it at best. The scenes
know which truth each detection came from (Stone Soup's ``TrueDetection`` paths, our
own draws in the multi-sensor scene).
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion import DetectionBatch, Tracker
from replay.scoring.gospa import gospa

RESULTS = Path(__file__).parent / "results"
AREA = np.array([[0.0, 40_000.0], [0.0, 20_000.0]])  # east, north extent, m
C, P_ORDER = 500.0, 1.0
SETTLE = 3  # scans inside coverage before a missed target counts as "settled"
EPOCH = datetime.datetime(2026, 1, 1)


# -- scenarios --------------------------------------------------------------------------


@dataclass
class Scan:
    """One second of a scenario: truth, and the batches of every sensor."""

    t: float
    truth_ids: np.ndarray  # (N,)
    truth: np.ndarray  # (N, 2)
    batches: list[DetectionBatch] = field(default_factory=list)
    detected: np.ndarray | None = None  # truth id per detection of a target (no clutter)


def _truth(n: int, steps: int, seed: int, q: float = 0.05) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stone Soup ground truth: ``n`` targets at the start, as many born as die."""
    from stonesoup.models.transition.linear import (
        CombinedLinearGaussianTransitionModel,
        ConstantVelocity,
    )
    from stonesoup.simulator.simple import MultiTargetGroundTruthSimulator
    from stonesoup.types.array import StateVector
    from stonesoup.types.state import GaussianState

    rng = np.random.default_rng(seed)
    death = 0.004
    start = [
        StateVector([e, ve, nn, vn])
        for e, nn, ve, vn in zip(
            rng.uniform(*AREA[0], n), rng.uniform(*AREA[1], n), *rng.normal(0, 5, (2, n)),
            strict=True,
        )
    ]
    # Every Stone Soup model draws its noise from its own generator, unseeded unless
    # told: without these seeds each run scored a different scene (GOSPA ratios moved
    # by a few per cent from run to run on the same code).
    transition = CombinedLinearGaussianTransitionModel(
        [ConstantVelocity(q, seed=seed + 1), ConstantVelocity(q, seed=seed + 2)], seed=seed + 3
    )
    birth = GaussianState(
        [[AREA[0].mean()], [0], [AREA[1].mean()], [0]],
        np.diag([10_000.0**2, 25.0, 5_000.0**2, 25.0]),
        timestamp=EPOCH,
    )
    sim = MultiTargetGroundTruthSimulator(
        transition_model=transition, initial_state=birth, timestep=datetime.timedelta(seconds=1),
        number_steps=steps, birth_rate=n * death, death_probability=death, seed=seed,
        preexisting_states=start,
    )
    ids: dict[int, int] = {}
    # Every path object is kept alive: Python reuses the id() of a freed object, so a
    # target born after another died could take its truth id (one spurious id switch
    # and coverage gap per reuse, which moved with unrelated allocations).
    seen: list[object] = []
    out = []
    for _, paths in sim:
        for p in paths:
            if id(p) not in ids:
                ids[id(p)] = len(ids)
                seen.append(p)
        key = [ids[id(p)] for p in paths]
        pos = np.array([[p.state_vector[0, 0], p.state_vector[2, 0]] for p in paths]).reshape(-1, 2)
        out.append((np.array(key, dtype=np.int64), pos))
    return out


def cv_scenario(n: int, steps: int, seed: int = 1) -> tuple[list[Scan], float, float]:
    """Stone Soup's truth and detection simulators over the 40 x 20 km area.

    Returns the scans, the detection probability and the clutter density (per m^2).
    """
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.simulator.simple import SimpleDetectionSimulator

    truth = _truth(n, steps, seed)
    # Stone Soup's detection simulator over a replay of the same truth.
    rng = np.random.default_rng(seed + 100)
    measurement = LinearGaussian(4, (0, 2), np.eye(2) * 400.0, seed=seed + 4)
    pd, clutter_rate = 0.9, 50.0
    density = clutter_rate / float(np.prod(np.diff(AREA)))
    sim = SimpleDetectionSimulator(
        groundtruth=_Replay(truth), measurement_model=measurement, meas_range=AREA,
        detection_probability=pd, clutter_rate=clutter_rate, seed=seed,
    )
    from stonesoup.types.detection import TrueDetection

    scans = []
    for k, (_, detections) in enumerate(sim):
        ids, pos = truth[k]
        detected = np.array(sorted(
            sim.groundtruth.truth_id[id(d.groundtruth_path)]
            for d in detections if isinstance(d, TrueDetection)
        ), dtype=np.int64)
        z = np.array([d.state_vector.ravel() for d in detections], dtype=float).reshape(-1, 2)
        z = z[np.lexsort(z.T)]  # a set's order changes from run to run; sorted, then
        z = z[rng.permutation(z.shape[0])]  # shuffled with a seed
        batch = DetectionBatch.build(
            "radar-1", "radar", k, float(k), z, np.eye(2) * 400.0, pd=pd, clutter_density=density
        )
        scans.append(Scan(float(k), ids, pos, [batch], detected))
    return scans, pd, density


class _Replay:
    """A Stone Soup ground-truth reader over truth positions already drawn.

    Paths grow as the reader is iterated, as a simulator's do: a detection simulator
    measures ``path[-1]``, which must be the state at the current step.
    """

    def __init__(self, truth):
        self._truth = truth
        self.truth_id: dict[int, int] = {}  # id() of a path -> its truth id

    def __iter__(self):
        from stonesoup.types.groundtruth import GroundTruthPath, GroundTruthState

        paths: dict[int, GroundTruthPath] = {}
        for k, (ids, pos) in enumerate(self._truth):
            when = EPOCH + datetime.timedelta(seconds=k)
            current = []  # a list, not a set: the simulator's draws follow this order
            for i, (e, nn) in zip(ids, pos, strict=True):
                if int(i) not in paths:
                    paths[int(i)] = GroundTruthPath()
                    self.truth_id[id(paths[int(i)])] = int(i)
                path = paths[int(i)]
                path.append(GroundTruthState([[e], [0.0], [nn], [0.0]], timestamp=when))
                current.append(path)
            yield when, current


def _sector(centre, radius, start, stop, shadows=(), vertices=66) -> np.ndarray:
    """A radar sector polygon; each shadow (from, to angle, range) notches it."""
    angles = np.linspace(start, stop, vertices)
    r = np.full(angles.shape, radius)
    for a0, a1, rng_ in shadows:
        r[(angles >= a0) & (angles <= a1)] = rng_
    ring = np.stack([centre[0] + r * np.cos(angles), centre[1] + r * np.sin(angles)], axis=1)
    return np.vstack([np.asarray(centre, float)[None], ring])


def _inside(points: np.ndarray, polygon: np.ndarray | None) -> np.ndarray:
    import shapely

    if polygon is None:
        return np.ones(points.shape[0], dtype=bool)
    return shapely.contains_xy(shapely.Polygon(polygon), points[:, 0], points[:, 1])


def multi_sensor_scenario(steps: int, seed: int = 2, n: int = 100) -> list[Scan]:
    """Three shadowed radars, two drones, a satellite from 2/3 of the run; 1 s scans."""
    truth = _truth(n, steps, seed)
    rng = np.random.default_rng(seed + 200)
    shadow = [(0.9, 1.05, 2_500.0), (2.0, 2.2, 3_000.0)]
    radars = [
        ("radar-w", _sector((7_000.0, 0.0), 14_000.0, 0.05, np.pi - 0.05, shadow)),
        ("radar-c", _sector((20_000.0, 0.0), 14_000.0, 0.05, np.pi - 0.05, shadow)),
        ("radar-e", _sector((33_000.0, 0.0), 14_000.0, 0.05, np.pi - 0.05, shadow)),
    ]
    late = int(steps * 2 / 3)
    scans = []
    for k, (ids, pos) in enumerate(truth):
        t = float(k)
        scan = Scan(t, ids, pos)
        sensors: list[tuple[str, str, np.ndarray | None, float, float, float]] = [
            (name, "radar", poly, 0.9, 20.0, 10.0) for name, poly in radars
        ]
        for j in range(2):  # drones sweep east-west at 15 m/s over the north half
            centre = np.array([
                5_000.0 + (j * 15_000.0 + 15.0 * t) % 30_000.0, 14_000.0 + 3_000.0 * j
            ])
            box = centre + np.array([[-2e3, -2e3], [2e3, -2e3], [2e3, 2e3], [-2e3, 2e3]])
            sensors.append((f"uav-{j + 1}", "drone", box, 0.95, 10.0, 1.0))
        if k >= late and k % 5 == 0:
            sensors.append(("sat-1", "satellite", None, 0.8, 30.0, 20.0))
        detected = []
        for name, kind, poly, pd, noise, clutter in sensors:
            seen = _inside(pos, poly) & (rng.random(pos.shape[0]) < pd)
            detected.append(ids[seen])
            z = pos[seen] + rng.normal(0.0, noise, (int(seen.sum()), 2))
            lo, hi = (poly.min(0), poly.max(0)) if poly is not None else (AREA[:, 0], AREA[:, 1])
            cz = rng.uniform(lo, hi, (rng.poisson(clutter * 2), 2))
            cz = cz[_inside(cz, poly)]
            area = float(np.prod(hi - lo)) / 2.0 if poly is not None else float(np.prod(hi - lo))
            z = np.vstack([z, cz])[rng.permutation(z.shape[0] + cz.shape[0])]
            scan.batches.append(DetectionBatch.build(
                name, kind, k, t, z, np.eye(2) * noise**2, coverage=poly, pd=pd,
                clutter_density=clutter / area,
            ))
        scan.detected = np.sort(np.concatenate(detected))  # twice when two sensors saw it
        scans.append(scan)
    return scans


# -- the two trackers -----------------------------------------------------------------


def stonesoup_gnn(
    q: float, min_points: int = 2, tentative_misses: int = 2, misses: int = 5, kdtree: bool = True
):
    """Stone Soup's GNN tracker, composed as its tutorials do; returns a per-scan step.

    ``kdtree=False`` uses ``GNNWith2DAssignment`` instead of the k-d tree associator,
    which needs one measurement model for all detections. The step takes the scan's
    detections (z (M, 2) and per-detection noise variance)
    and returns the confirmed tracks' ids (M,) and positions (M, 2).
    """
    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
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

    from fusion.tracking.gating import gate_threshold

    transition = CombinedLinearGaussianTransitionModel([ConstantVelocity(q)] * 2)
    models: dict[float, LinearGaussian] = {}

    def model(var: float) -> LinearGaussian:
        return models.setdefault(var, LinearGaussian(4, (0, 2), np.eye(2) * var))

    predictor = KalmanPredictor(transition)
    updater = KalmanUpdater(model(400.0))
    gate = float(np.sqrt(gate_threshold(0.99)))
    hypothesiser = DistanceHypothesiser(predictor, updater, Mahalanobis(), missed_distance=gate)

    def associator_() -> object:
        if kdtree:
            return DetectionKDTreeGNN2D(hypothesiser, predictor, updater, max_distance=2_000.0)
        return GNNWith2DAssignment(hypothesiser)

    associator = associator_()
    deleter = UpdateTimeStepsDeleter(time_steps_since_update=misses)
    prior = GaussianState(np.zeros((4, 1)), np.diag([400.0, 15.0**2, 400.0, 15.0**2]))
    initiator = MultiMeasurementInitiator(
        prior, UpdateTimeStepsDeleter(time_steps_since_update=tentative_misses),
        associator_(),
        updater, model(400.0), min_points=min_points,
    )
    tracks: set = set()
    names: dict[int, int] = {}

    def step(t: float, z: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal tracks
        when = EPOCH + datetime.timedelta(seconds=t)
        detections = {
            Detection(zi.reshape(2, 1), timestamp=when, measurement_model=model(float(v)))
            for zi, v in zip(z, var, strict=True)
        }
        used = set()
        for track, hypothesis in associator.associate(tracks, detections, when).items():
            if hypothesis:
                track.append(updater.update(hypothesis))
                used.add(hypothesis.measurement)
            else:
                track.append(hypothesis.prediction)
        tracks -= deleter.delete_tracks(tracks)
        tracks |= initiator.initiate(detections - used, when)
        listed = list(tracks)
        ids = np.array([names.setdefault(id(tr), len(names)) for tr in listed], dtype=np.int64)
        pos = np.array([[tr.state_vector[0, 0], tr.state_vector[2, 0]] for tr in listed])
        return ids, pos.reshape(-1, 2)

    return step


def bufferzone_step(tracker: Tracker):
    def step(scan: Scan) -> tuple[np.ndarray, np.ndarray]:
        for batch in scan.batches:
            tracker.process(batch)
        snap = tracker.confirmed(at=scan.t)
        return snap.ids, snap.x[:, :2]

    return step


# -- scoring --------------------------------------------------------------------------


@dataclass
class Score:
    """Per-second scores of one tracker on one scenario."""

    gospa: list[float] = field(default_factory=list)
    parts: list[tuple[float, float, float]] = field(default_factory=list)
    n_false: list[int] = field(default_factory=list)
    n_missed: list[int] = field(default_factory=list)
    missed_in_coverage: list[int] = field(default_factory=list)
    missed_settled: list[int] = field(default_factory=list)
    missed_first_look: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    assigned: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # truth -> (k, id)

    def add(
        self, k: int, scan: Scan, ids, pos, elapsed: float, covered: np.ndarray,
        settled: np.ndarray, first_look: np.ndarray | None = None,
    ) -> None:
        g = gospa(scan.truth, pos, C, P_ORDER, 2.0)
        self.gospa.append(g.distance)
        self.parts.append((g.localisation, g.missed, g.false))
        self.n_false.append(g.n_false)
        self.n_missed.append(g.n_missed)
        self.missed_in_coverage.append(int(np.count_nonzero((g.assignment < 0) & covered)))
        self.missed_settled.append(int(np.count_nonzero((g.assignment < 0) & settled)))
        if first_look is not None:
            self.missed_first_look.append(int(np.count_nonzero((g.assignment < 0) & first_look)))
        self.seconds.append(elapsed)
        for truth, j in zip(scan.truth_ids, g.assignment, strict=True):
            if j >= 0:
                self.assigned.setdefault(int(truth), []).append((k, int(ids[j])))

    def id_switches(self) -> int:
        return sum(
            int(np.count_nonzero(np.diff([i for _, i in seq]) != 0))
            for seq in self.assigned.values()
        )

    def ids_per_truth(self) -> float:
        counts = [len({i for _, i in seq}) for seq in self.assigned.values()]
        return float(np.mean(counts)) if counts else float("nan")

    def gaps_held(self, gaps: list[tuple[int, int, int]]) -> tuple[int, int]:
        """Of the gaps ``(truth, first step out, first step back)``, how many the same id spans.

        A gap counts when the truth was tracked on the step before it; it is held when
        the track on the step before equals the one within 5 s after.
        """
        held = total = 0
        for truth, out, back in gaps:
            seq = dict(self.assigned.get(truth, []))
            before = seq.get(out - 1)
            if before is None:
                continue
            total += 1
            after = [seq[k] for k in range(back, back + 6) if k in seq]
            held += bool(after) and after[-1] == before
        return held, total

    def summary(self, skip: int = 0) -> dict[str, float]:
        loc, mis, fal = np.array(self.parts[skip:]).mean(axis=0)
        return {
            "gospa": float(np.mean(self.gospa[skip:])),
            "localisation": float(loc),
            "missed": float(mis),
            "false": float(fal),
            "false_tracks": float(np.mean(self.n_false[skip:])),
            "missed_targets": float(np.mean(self.n_missed[skip:])),
            "missed_in_coverage": float(np.mean(self.missed_in_coverage[skip:])),
            "missed_settled": float(np.mean(self.missed_settled[skip:])),
            "id_switches": float(self.id_switches()),
            "ids_per_truth": self.ids_per_truth(),
            "ms_per_scan": float(np.median(self.seconds) * 1e3),
        }


def coverage_gaps(scans: list[Scan], covered: list[np.ndarray], min_gap: int = 3):
    """Spans where a truth was out of every sensor's coverage for >= ``min_gap`` steps."""
    last_in: dict[int, int] = {}
    gaps = []
    for k, (scan, cov) in enumerate(zip(scans, covered, strict=True)):
        for truth, c in zip(scan.truth_ids, cov, strict=True):
            truth = int(truth)
            if not c:
                continue
            prev = last_in.get(truth)
            if prev is not None and k - prev - 1 >= min_gap:
                gaps.append((truth, prev + 1, k))
            last_in[truth] = k
    return gaps


def two_look_misses(scans: list[Scan], in_coverage: bool = False) -> np.ndarray | None:
    """Per scan, the live targets not yet detected twice (by any sensors, at any times);
    with ``in_coverage``, only those inside some sensor's coverage then.

    A tracker that reports a target from its second detection on misses at least
    these, however well it associates and whatever it does about clutter: with the
    missed part of GOSPA at ``c / 2`` each, they bound what such a tracker can score.
    None when the scans do not say which targets were detected.
    """
    if any(scan.detected is None for scan in scans):
        return None
    looks: dict[int, int] = {}
    out = []
    for scan in scans:
        for i in scan.detected.tolist():  # type: ignore[union-attr]
            looks[i] = looks.get(i, 0) + 1
        once = np.array([looks.get(i, 0) < 2 for i in scan.truth_ids.tolist()], dtype=bool)
        if in_coverage:
            once &= np.logical_or.reduce(
                [_inside(scan.truth, b.coverage) for b in scan.batches] or [np.zeros_like(once)]
            )
        out.append(int(np.count_nonzero(once)))
    return np.array(out)


def run(
    scans: list[Scan], q: float, stonesoup: bool = True, kdtree: bool = True
) -> dict[str, Score]:
    """Both trackers over the same scans; returns their per-second scores."""
    covered = [
        np.logical_or.reduce([_inside(s.truth, b.coverage) for b in s.batches] or
                             [np.zeros(len(s.truth_ids), bool)])
        for s in scans
    ]
    # Inside coverage for the last SETTLE scans: long enough for any tracker to confirm.
    # A first look: inside coverage for the first time in the scene. A tracker that
    # reports a target after its second detection has it then only where two sensors
    # saw it in the same second.
    inside_for: dict[int, int] = {}
    seen: set[int] = set()
    settled, first_look = [], []
    for scan, cov in zip(scans, covered, strict=True):
        run_length = [inside_for.get(int(i), 0) + 1 if c else 0
                      for i, c in zip(scan.truth_ids, cov, strict=True)]
        inside_for = dict(zip(scan.truth_ids.tolist(), run_length, strict=True))
        settled.append(np.array(run_length, dtype=int) >= SETTLE)
        first_look.append(np.array([c and int(i) not in seen
                                    for i, c in zip(scan.truth_ids, cov, strict=True)], dtype=bool))
        seen.update(int(i) for i, c in zip(scan.truth_ids, cov, strict=True) if c)
    steps = {"bufferzone": bufferzone_step(Tracker())}
    if stonesoup:
        theirs = stonesoup_gnn(q, kdtree=kdtree)

        def stonesoup_step(scan: Scan):
            z = np.vstack([b.z for b in scan.batches])
            var = np.concatenate([b.R[:, 0, 0] for b in scan.batches])
            return theirs(scan.t, z, var)

        steps["stonesoup"] = stonesoup_step
    scores = {name: Score() for name in steps}
    for k, scan in enumerate(scans):
        for name, step in steps.items():
            started = time.perf_counter()
            ids, pos = step(scan)
            scores[name].add(
                k, scan, ids, pos, time.perf_counter() - started, covered[k], settled[k],
                first_look[k],
            )
    for score in scores.values():
        score.gaps = coverage_gaps(scans, covered)  # type: ignore[attr-defined]
    return scores


def table(
    title: str, scores: dict[str, Score], multi: bool = False, scans: list[Scan] | None = None
) -> str:
    """The scores side by side, and what a two-detection tracker cannot avoid in ``scans``
    (:func:`two_look_misses`)."""
    floor = None if scans is None else two_look_misses(scans)
    rows = {name: s.summary() for name, s in scores.items()}
    head = (
        f"### {title}\n\n| tracker | GOSPA | localisation | missed | false | false tracks/scan "
        "| missed targets/scan | id switches | track ids per truth | ms/scan |"
    )
    head += (
        f" missed in coverage/scan | of them inside for >= {SETTLE} scans | gaps held |"
        if multi else ""
    )
    lines = [head, "|---" * (10 + 3 * multi) + "|"]
    for name, r in rows.items():
        line = (
            f"| {name} | {r['gospa']:.1f} | {r['localisation']:.1f} | {r['missed']:.1f} "
            f"| {r['false']:.1f} | {r['false_tracks']:.2f} | {r['missed_targets']:.2f} "
            f"| {r['id_switches']:.0f} | {r['ids_per_truth']:.2f} | {r['ms_per_scan']:.2f} |"
        )
        if multi:
            held, total = scores[name].gaps_held(scores[name].gaps)  # type: ignore[attr-defined]
            line += (
                f" {r['missed_in_coverage']:.2f} | {r['missed_settled']:.2f} "
                f"| {held} of {total} |"
            )
        lines.append(line)
    # Where the misses fall: no tracker can confirm on a scene's first scan, and the
    # next two hold the targets still waiting for their second detection; the rest is
    # births, losses and unresolved neighbours.
    for name, score in scores.items():
        missed = np.array(score.n_missed)
        lines.append(
            f"\n{name}: missed targets on scans 0-3 {missed[:4].tolist()}, "
            f"then {missed[4:].mean():.2f} per scan."
        )
        if multi and score.missed_first_look:
            first = np.array(score.missed_first_look)
            lines.append(
                f"Of its missed in coverage, {first.mean():.2f} per scan are targets on their "
                f"first look inside coverage ({first[0]} on scan 0 alone, "
                f"{first[0] / first.size:.2f} per scan): a tracker that reports a target on "
                f"its second detection has those only where a second sensor saw them in the "
                f"same second. The rest: "
                f"{rows[name]['missed_in_coverage'] - first.mean():.2f} per scan."
            )
    if floor is not None and "stonesoup" in rows:
        # Missed part of the floor, plus the better localisation part of the two (which
        # a tracker might still beat): a bound on GOSPA for any tracker that needs a
        # second detection, even one that never starts a false track.
        missed_part = C / 2.0 * floor.mean()
        bound = missed_part + min(r["localisation"] for r in rows.values())
        lines.append(
            f"\nEven with perfect association and no false track, a tracker that reports a "
            f"target from its second detection on misses {floor.mean():.2f} targets per "
            f"scan here (scans 0-3 {floor[:4].tolist()}): a missed part of {missed_part:.1f}; "
            f"with the better localisation part above, GOSPA {bound:.1f} = "
            f"{bound / rows['stonesoup']['gospa']:.3f}x Stone Soup's."
        )
        inside = two_look_misses(scans, in_coverage=True) if multi and scans else None
        if inside is not None:
            lines.append(
                f"Of those, {inside.mean():.2f} per scan are inside coverage "
                f"({inside[0]} on scan 0): the floor of missed in coverage for such a tracker."
            )
    if "stonesoup" in rows:
        ratio = rows["bufferzone"]["gospa"] / rows["stonesoup"]["gospa"]
        false = rows["bufferzone"]["false_tracks"] / max(rows["stonesoup"]["false_tracks"], 1e-9)
        lines.append(
            f"\nbufferzone / Stone Soup: GOSPA {ratio:.2f}x (target <= 0.8), "
            f"false tracks per scan {false:.2f}x (target <= 0.5)."
        )
    return "\n".join(lines) + "\n"


def seeds_table(n: int, steps: int, seeds: list[int], q: float = 0.05) -> str:
    """The ``n``-target scene drawn with each seed: one row per seed and the spread.

    One seeded scene is one draw; the GOSPA ratio moves by several hundredths from
    draw to draw, so a claim about it should hold over several.
    """
    lines = [
        f"### {n} targets, {steps} scans, over seeds {', '.join(map(str, seeds))}\n",
        "| seed | GOSPA bufferzone | GOSPA Stone Soup | ratio | false tracks/scan "
        "bufferzone / Stone Soup | ratio |",
        "|---|---|---|---|---|---|",
    ]
    ratios, false_ratios = [], []
    for seed in seeds:
        scores = run(cv_scenario(n, steps, seed=seed)[0], q)
        ours, theirs = scores["bufferzone"].summary(), scores["stonesoup"].summary()
        ratios.append(ours["gospa"] / theirs["gospa"])
        false_ratios.append(ours["false_tracks"] / max(theirs["false_tracks"], 1e-9))
        lines.append(
            f"| {seed} | {ours['gospa']:.1f} | {theirs['gospa']:.1f} | {ratios[-1]:.3f} "
            f"| {ours['false_tracks']:.2f} / {theirs['false_tracks']:.2f} "
            f"| {false_ratios[-1]:.2f} |"
        )
    lines.append(
        f"\nGOSPA ratio over {len(seeds)} seeds: mean {np.mean(ratios):.3f}, "
        f"range {min(ratios):.3f}-{max(ratios):.3f}; false tracks ratio mean "
        f"{np.mean(false_ratios):.2f}, range {min(false_ratios):.2f}-{max(false_ratios):.2f}."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scenes (a smoke run)")
    parser.add_argument("--only", choices=["cv-100", "cv-1000", "multi-sensor"], action="append")
    parser.add_argument(
        "--seeds", type=lambda text: [int(s) for s in text.split(",")], default=None,
        metavar="S1,S2,...",
        help="also run the 100-target scene with each of these seeds and print the spread",
    )
    args = parser.parse_args(argv)
    steps = 20 if args.quick else 60
    big = 200 if args.quick else 1000
    chosen = args.only or ["cv-100", "cv-1000", "multi-sensor"]
    q = 0.05
    out = ["# Accuracy against Stone Soup's GNN tracker\n",
           f"`python -m benchmarks.accuracy{' --quick' if args.quick else ''}`; "
           f"GOSPA p = {P_ORDER:g}, c = {C:g} m, alpha = 2, means over one-second scans "
           f"({steps}, {steps // 2} and {steps * 3} of them for the three scenes).\n"]
    if "cv-100" in chosen:
        scans = cv_scenario(100, steps)[0]
        out.append(table(f"100 targets, {steps} scans", run(scans, q), scans=scans))
    if "cv-1000" in chosen:
        scans = cv_scenario(big, steps // 2)[0]
        out.append(table(f"{big} targets, {steps // 2} scans", run(scans, q), scans=scans))
    if "multi-sensor" in chosen:
        scans = multi_sensor_scenario(steps * 3)
        out.append(table(f"multi-sensor (3 shadowed radars, 2 drones, late satellite), "
                         f"{steps * 3} scans",
                         run(scans, q, kdtree=False), multi=True, scans=scans))
    if args.seeds:
        out.append(seeds_table(100, steps, args.seeds, q))
    text = "\n".join(out)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "accuracy.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
