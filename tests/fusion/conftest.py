"""Fixtures shared by the fusion tests."""

from __future__ import annotations

import threading

import pytest

from fusion import Tracker
from fusion.service import Pipeline, ServiceConfig, TrackerService
from fusion.service.alertlog import AlertLog


@pytest.fixture
def running_service(engine, context, ipc_endpoint, tmp_path):
    """A TrackerService on ipc sockets in a thread; yields (service, config, result).

    ``result`` receives the final status once the service has stopped; the thread is
    stopped and joined at the end of the test.
    """
    config = ServiceConfig(
        det_bind=(ipc_endpoint("det"),),
        publish=ipc_endpoint("pub"),
        snapshot=ipc_endpoint("snap"),
        reorder_window=0.0,
        track_interval=0.2,
        status_interval=0.2,
        alert_log=str(tmp_path / "alerts.log"),
    )
    pipeline = Pipeline(Tracker(), engine, config, alert_log=AlertLog(config.alert_log))
    service = TrackerService(pipeline, config, context=context)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(service.run()), daemon=True)
    thread.start()
    assert service.ready.wait(10)
    yield service, config, result
    service.stop()
    thread.join(10)
    assert not thread.is_alive()
