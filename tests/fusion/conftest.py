"""Fixtures shared by the fusion tests."""

from __future__ import annotations

import threading

import numpy as np
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


# Alert-log events shared by the log, chain and recovery tests
def event(alert_id, ev, t, **extra):
    return {
        "alert_id": alert_id,
        "kind": alert_id.split(":")[1],
        "event": ev,
        "severity": "high",
        "zone": "zone-a",
        "track_id": int(alert_id.split(":")[2]),
        "t": t,
        "position": {"east": 1.5, "north": -2.25, "lon": 33.0, "lat": 35.0},
        "velocity": {"east": 0.1, "north": 0.2},
        "speed": 0.2236,
        "p_inside": 0.97,
        "time_to_breach": None,
        "side": "north",
        "cls": "vehicle",
        "conf": 0.8,
        "evidence": ["radar-2", "uav-1"],
        "opened_at": 1.0,
        **extra,
    }


EVENTS = [
    event("zone-a:incursion:1:0", "open", 1.0),
    event("zone-a:incursion:2:0", "open", 2.0),
    event("zone-a:incursion:1:0", "update", 3.0),
    event("zone-a:incursion:2:0", "close", 4.0),
    event("zone-a:exit:2:0", "open", 4.0),
    event("zone-a:exit:2:0", "close", 4.0),
]


def long_history(n_alerts=170, seed=7):
    """About 680 events: alerts opening, updating and closing, interleaved."""
    rng = np.random.default_rng(seed)
    events, t = [], 0.0
    live: list[str] = []
    for k in range(n_alerts):
        t += 1.0
        aid = f"zone-a:incursion:{k}:0"
        events.append(event(aid, "open", t))
        live.append(aid)
        for _ in range(2):
            events.append(event(live[int(rng.integers(len(live)))], "update", t))
        if rng.random() < 0.8:
            events.append(event(live.pop(int(rng.integers(len(live)))), "close", t))
    return events
