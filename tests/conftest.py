"""Fixtures shared by every test package."""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from fusion.alerting.engine import AlertEngine
from fusion.alerting.zones import Zone, ZoneSet

# A 10 km x 1 km east-west strip; north of it is "north", south is "south".
STRIP = np.array([[-5000.0, -500.0], [5000.0, -500.0], [5000.0, 500.0], [-5000.0, 500.0]])


@pytest.fixture
def strip_zones() -> ZoneSet:
    return ZoneSet([Zone.from_local("zone-t", STRIP, side_names=["north", "south"])])


@pytest.fixture
def engine(strip_zones) -> AlertEngine:
    return AlertEngine(strip_zones)


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def ipc_endpoint(tmp_path):
    """Fresh ipc endpoints in this test's temporary directory."""
    counter = iter(range(1000))
    return lambda name="sock": f"ipc://{tmp_path}/{name}-{next(counter)}.sock"
