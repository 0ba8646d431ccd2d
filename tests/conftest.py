"""Fixtures shared by every test package."""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from fusion.alerting.engine import AlertEngine
from fusion.alerting.zones import Zone, ZoneSet
from sensors.scenario import Scenario
from tests.scenarios import SCENARIOS
from tests.sockets import AlertCollector, ServicePublisher, StatusWatch

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


# -- scenarios (the TOML itself lives in tests/scenarios.py) -------------------------


@pytest.fixture
def scenario_file(tmp_path):
    """``scenario_file(name, text=None)``: the named scenario (or ``text``) as a file."""

    def write(name: str, text: str | None = None):
        path = tmp_path / f"{name}.toml"
        path.write_text(SCENARIOS[name] if text is None else text)
        return path

    return write


@pytest.fixture
def small_text() -> str:
    return SCENARIOS["small"]


@pytest.fixture
def small() -> Scenario:
    return Scenario.loads(SCENARIOS["small"], source="small")


# -- sockets: proof of connection instead of sleeps (see tests/sockets.py) ------------


@pytest.fixture
def status_watch(context):
    """``status_watch(publish_endpoint, curve=None)``: a StatusWatch, closed afterwards."""
    made: list[StatusWatch] = []

    def make(endpoint: str, curve=None) -> StatusWatch:
        made.append(StatusWatch(context, endpoint, curve))
        return made[-1]

    yield make
    for watch in made:
        watch.close()


@pytest.fixture
def service_publisher(context):
    """``service_publisher(det_endpoint, watch, curve=None, probe_sensor=None, ...)``.

    A ServicePublisher whose probe the service has already counted (its ``baseline``
    is the status that shows it); closed afterwards. Keyword arguments go to
    :class:`tests.sockets.ServicePublisher`.
    """
    made: list[ServicePublisher] = []

    def make(endpoint: str, watch: StatusWatch, **kwargs):
        made.append(ServicePublisher(context, endpoint, watch, **kwargs))
        made[-1].open()
        return made[-1]

    yield make
    for publisher in made:
        publisher.close()


@pytest.fixture
def alert_collector():
    """``alert_collector(client)``: an AlertCollector, started (its subscription live)
    and stopped, thread joined, at the end of the test."""
    made: list[AlertCollector] = []

    def make(client) -> AlertCollector:
        made.append(AlertCollector(client))
        return made[-1].start()

    yield make
    for collector in made:
        collector.stop()
