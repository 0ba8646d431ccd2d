"""Shared fixtures: a small scenario with every sensor kind, and static targets."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.scenario import Scenario
from sensors.truth import Trajectories

SMALL = """
name = "small"
seed = 11
duration = 60.0
truth_dt = 1.0
origin = [24.0, 45.0]
area = [[-6000.0, -5000.0], [6000.0, 5000.0]]

[[zones]]
name = "zone-t"
sides = ["north", "south"]
local = [[-4000.0, -300.0], [4000.0, -300.0], [4000.0, 300.0], [-4000.0, 300.0]]

[[targets]]
name = "walkers"
cls = "person"
behaviour = "wander"
count = 6
offset = [300.0, 2000.0]
birth = [-20.0, 20.0]

[[targets]]
name = "crosser"
cls = "vehicle"
behaviour = "cross"
side = "south"
along = 0.5
offset = 200.0
speed = 20.0
birth = 2.0

[[targets]]
name = "prober"
cls = "vehicle"
behaviour = "probe"
side = "north"
along = 0.2
offset = 400.0
stop = 100.0
speed = 15.0
birth = 0.0

[[sensors]]
id = "radar-1"
kind = "radar"
position = [0.0, -3000.0]
range = [50.0, 6000.0]
width = 120.0
rate = 1.0
pd = 0.9
clutter = 2.0
sigma_range = 10.0
sigma_bearing = 0.2
latency = [0.1, 0.3]

[[sensors]]
id = "uav-1"
kind = "drone"
racetrack = { center = [0.0, 0.0], length = 4000.0, width = 1000.0 }
speed = 30.0
rate = 4.0
footprint = [1200.0, 800.0]
pd = 0.9
clutter = 0.3
sigma = 20.0
latency = 0.5

[[sensors]]
id = "sat-1"
kind = "satellite"
revisit = 15.0
first_pass = 5.0
swath = { center = [0.0, 0.0], length = 10000.0, width = 6000.0 }
pd = 0.95
clutter = 3.0
sigma = 5.0
latency = [12.0, 14.0]

[[sensors]]
id = "ugs"
kind = "ugs"
line = [[-3000.0, 500.0], [3000.0, 500.0]]
count = 3
radius = 150.0
rate = 0.5
pd = { person = 0.3, vehicle = 0.9 }
clutter = 0.05
"""


@pytest.fixture
def small_text() -> str:
    return SMALL


@pytest.fixture
def small() -> Scenario:
    return Scenario.loads(SMALL, source="small")


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
