"""Simulated ground truth and drone, satellite and ground sensor feeds.

A scenario (TOML) gives the zone, the targets and the sensors; the truth and every
sensor's detections follow from it and its seed, bit for bit::

    scenario = load_default()                 # or Scenario.load("my.toml")
    truth = simulate_truth(scenario)          # positions every truth_dt, incursions
    for t_delivery, batch in iter_feed(scenario, truth):
        ...                                   # fusion.messages.DetectionBatch

``bufferzone sensors SCENARIO --bind tcp://*:5556`` publishes them over ZeroMQ.
"""

from sensors.feed import generate_feed, iter_feed, iter_messages
from sensors.scenario import Scenario, ScenarioError, load_default, load_scenario
from sensors.truth import Truth, decode_truth, encode_truth, simulate_truth

__all__ = [
    "Scenario",
    "ScenarioError",
    "Truth",
    "decode_truth",
    "encode_truth",
    "generate_feed",
    "iter_feed",
    "iter_messages",
    "load_default",
    "load_scenario",
    "simulate_truth",
]
