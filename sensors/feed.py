"""The whole simulated feed: every sensor's batches in delivery order.

A batch is delivered at its measurement time plus that sensor's latency (drawn per
frame from the sensor's ``latency`` range). A sensor never overtakes itself: a frame
is not delivered before the sensor's previous one, so sequence numbers arrive in
order. Across sensors nothing is promised: a satellite's snapshot arrives tens of
seconds after radar scans measured later.

Each sensor draws from two generators of its own, one for detections and one for
latency, seeded by (scenario seed, sensor id): adding a sensor or changing one's
latency leaves every other detection as it was.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from fusion.messages import DetectionBatch, encode_batch
from sensors.models import Frame, sensor_frames
from sensors.scenario import Scenario, SensorSpec
from sensors.truth import StateCache, Trajectories, Truth, child_rng, encode_truth, simulate_truth


def sensor_batches(spec: SensorSpec, traj: Trajectories | StateCache, scenario: Scenario,
                   with_frames: bool = False) -> Iterator[tuple]:
    """One sensor's ``(t_delivery, batch)`` in order (``(t_delivery, batch, frame)`` if asked).

    ``traj`` is anything with ``state_at(t)``: the trajectories, or a
    :class:`~sensors.truth.StateCache` shared by the sensors of one feed.
    """
    rng = child_rng(scenario.seed, "sensor", spec.id)
    latency_rng = child_rng(scenario.seed, "latency", spec.id)
    last = float("-inf")
    lo, hi = spec.latency
    for seq, frame in enumerate(sensor_frames(spec, traj, scenario.duration, rng)):
        latency = lo if hi == lo else float(latency_rng.uniform(lo, hi))
        last = max(last, frame.t + latency)
        batch = DetectionBatch.build(
            spec.id, spec.kind, seq, frame.t, frame.z, frame.R,
            classes=frame.cls, conf=frame.conf, coverage=frame.coverage,
        )
        yield (last, batch, frame) if with_frames else (last, batch)


def iter_feed(
    scenario: Scenario, truth: Truth | None = None
) -> Iterator[tuple[float, DetectionBatch]]:
    """Every sensor's batches merged by delivery time, lazily.

    Ties are broken by the sensor's position in the scenario, then its sequence
    number, so the order is the same every run.

    Parameters
    ----------
    scenario : Scenario
    truth : Truth, optional
        From :func:`sensors.truth.simulate_truth`; simulated here if not given.

    Yields
    ------
    t_delivery : float
    batch : DetectionBatch
    """
    traj = StateCache(_trajectories(scenario, truth))
    streams = [
        ((t, i, b.seq, b) for t, b in sensor_batches(spec, traj, scenario))
        for i, spec in enumerate(scenario.sensors)
    ]
    for t, _, _, batch in heapq.merge(*streams, key=lambda item: item[:3]):
        yield t, batch


def generate_feed(
    scenario: Scenario, truth: Truth | None = None
) -> list[tuple[float, DetectionBatch]]:
    """All of :func:`iter_feed` as a list, sorted by delivery time (stable)."""
    return list(iter_feed(scenario, truth))


def iter_messages(scenario: Scenario, truth: Truth | None = None,
                  include_truth: bool = False) -> Iterator[tuple[float, bytes, bytes]]:
    """The feed as wire messages ``(t_delivery, topic, payload)``, truth first at ties.

    With ``include_truth``, each truth sample goes out at its own time on
    ``truth.<scenario name>`` (truth has no latency).
    """
    if truth is None:
        truth = simulate_truth(scenario)
    dets = ((t, 1, batch.topic, batch) for t, batch in iter_feed(scenario, truth))
    streams: list[Iterator] = [dets]
    if include_truth:
        streams.insert(0, ((float(t), 0, truth.topic, k) for k, t in enumerate(truth.times)))
    for t, kind, topic, item in heapq.merge(*streams, key=lambda m: m[:2]):
        if kind == 0:
            yield t, topic, encode_truth(truth.times[item], *truth.step(item))
        else:
            yield t, topic, encode_batch(item)


def _trajectories(scenario: Scenario, truth: Truth | None) -> Trajectories:
    if truth is None:
        truth = simulate_truth(scenario)
    if truth.trajectories is None:
        raise ValueError("the truth was loaded from a file; simulate it to drive the sensors")
    return truth.trajectories


__all__ = ["Frame", "generate_feed", "iter_feed", "iter_messages", "sensor_batches"]
