"""A stand-in service (XPUB + ROUTER) and the ops web server in a thread, for tests/ops.

The stand-in publishes what the real service publishes (``status``, ``track.update``,
``alert.*``) with the real encoders, and proves subscriptions by the XPUB's
subscription frames instead of sleeping. The web server runs on its own asyncio loop
in a thread; tests talk to it over HTTP on a random loopback port.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any

import numpy as np
import pytest
import zmq
from shapely.geometry import shape

from fusion.geo import LocalFrame
from fusion.messages import pack_map, unpack_map
from replay.offline import encode_tracks
from replay.ops.geojson import signed_area
from replay.ops.layers import Layers
from replay.ops.picture import OpsPicture
from replay.ops.web import OpsServer

DEADLINE = 10.0
ORIGIN = (23.8, 44.98)
FRAME = LocalFrame(*ORIGIN)
# A zone 2 km x 1 km north of the origin, written clockwise on purpose (RFC 7946 wants
# counter-clockwise exteriors: the GeoJSON output must fix it).
ZONE_LOCAL = np.array([[-1000.0, 1000.0], [1000.0, 1000.0], [1000.0, 0.0], [-1000.0, 0.0]])


def make_layers() -> Layers:
    ring = FRAME.to_lonlat(ZONE_LOCAL).tolist()
    zones = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "zone-a", "kind": "buffer"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},  # not closed, clockwise
    }]}
    sector = FRAME.to_lonlat(np.array([[0.0, -2000.0], [3000.0, 2000.0], [-3000.0, 2000.0]]))
    sensors = [{"id": "radar-1", "kind": "radar",
                "position": FRAME.to_lonlat(np.array([0.0, -2000.0])).tolist(),
                "coverage": sector.tolist(), "route": None}]
    return Layers(FRAME, zones, sensors, "test-zone")


@pytest.fixture
def layers() -> Layers:
    return make_layers()


class FakeService:
    """Publishes like the tracker service; answers open-alert snapshot requests."""

    TOPICS = (b"alert.", b"track.update", b"status", b"heartbeat")

    def __init__(self, context: zmq.Context, pub: str, snap: str):
        self.pub_endpoint, self.snap_endpoint = pub, snap
        self.pub = context.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription frame, even repeats
        self.pub.bind(pub)
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(snap)
        self.run = "run-1"
        self.frame = FRAME  # the local frame its positions are in
        self.seq: dict[str, int] = {}
        self.open: dict[str, dict[str, Any]] = {}
        self.snapshots = 0
        self.uptime = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()

    def _answer(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self.router.poll(20):
                    continue
                ident, *_, body = self.router.recv_multipart()
                assert unpack_map(body)["type"] == "open_alerts"
                reply = {"type": "open_alerts", "alerts": list(self.open.values()),
                         "run": self.run, "alert_seq": dict(self.seq)}
                self.router.send_multipart([ident, b"", pack_map(reply)])
                self.snapshots += 1

    def wait_subscribers(self, n: int = 1, timeout: float = DEADLINE,
                         need: dict[bytes, int] | None = None) -> None:
        """Block until subscriptions arrived (proof, not a sleep): ``n`` to each topic of
        the picture, or ``need[topic]`` to each topic named there."""
        need = need or {t: n for t in self.TOPICS}
        want = {t: 0 for t in need}
        deadline = time.monotonic() + timeout
        while any(want[t] < need[t] for t in need):
            left = deadline - time.monotonic()
            assert left > 0, f"subscribers never arrived: {want}"
            if self.pub.poll(int(left * 1e3)):
                frame = self.pub.recv()
                if frame[:1] == b"\x01" and frame[1:] in want:
                    want[frame[1:]] += 1

    def status(self, **extra: Any) -> None:
        self.uptime += 0.5
        self.pub.send_multipart([b"status", pack_map({
            "type": "status", "run": self.run, "uptime": self.uptime, "status_interval": 0.2,
            "batches": 10, "detections": 25, "received": 11, "rejected": {"decode": 1},
            "rejected_total": 1, "gaps": {"radar-1": 2}, "late_batches": 3,
            "live_tracks": 4, "confirmed_tracks": 2, "open_alerts": len(self.open),
            "alerts": {"incursion.open": 1}, "alert_seq": dict(self.seq),
            "latency_ms": {"p50": 1.5, "p99": 4.0, "max": 9.0}, **extra})])

    def tracks(self, t: float, ids: list[int], en: list[list[float]],
               v: list[list[float]] | None = None, cls: list[int] | None = None) -> None:
        n = len(ids)
        x = np.zeros((n, 4))
        x[:, :2] = en
        if v is not None:
            x[:, 2:] = v
        P = np.tile(np.eye(4) * 25.0, (n, 1, 1))
        payload = encode_tracks(t, np.array(ids), x, P,
                                None if cls is None else np.array(cls, "u1"),
                                np.full(n, 0.9, "<f4"))
        self.pub.send_multipart([b"track.update", payload])

    def alert(self, alert_id: str, event: str = "open", en=(0.0, 500.0), **fields: Any) -> dict:
        lon, lat = self.frame.to_lonlat(np.array(en, dtype=float))
        msg = {"alert_id": alert_id, "kind": "incursion", "event": event,
               "severity": "high", "zone": "zone-a", "track_id": 7, "t": 12.5,
               "position": {"east": en[0], "north": en[1], "lon": float(lon), "lat": float(lat)},
               "velocity": {"east": 1.0, "north": 2.0}, "speed": 2.2, "p_inside": 0.9,
               "cls": "vehicle", "conf": 0.9, "side": "south",
               "evidence": ["radar-1", "drone-2"], **fields}
        topic = f"alert.{msg['zone']}.{msg['kind']}"
        self.seq[topic] = self.seq.get(topic, 0) + 1
        if event == "close":
            self.open.pop(alert_id, None)
        else:
            self.open[alert_id] = msg
        self.pub.send_multipart([topic.encode(), pack_map(
            {"type": "alert", **msg, "run": self.run, "seq": self.seq[topic]})])
        return msg

    def close(self) -> None:
        self._stop.set()
        self._thread.join(DEADLINE)
        with self._lock:
            self.pub.close(0)
            self.router.close(0)


@pytest.fixture
def ops_context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def fake_service(ops_context, tmp_path):
    svc = FakeService(ops_context, f"ipc://{tmp_path}/pub.sock", f"ipc://{tmp_path}/snap.sock")
    yield svc
    svc.close()


class ServerThread:
    """An :class:`OpsServer` on its own event loop in a thread."""

    def __init__(self, picture: OpsPicture, publish: str, snapshot: str, **kwargs: Any):
        self.picture = picture
        self.loop = asyncio.new_event_loop()
        self.server = OpsServer(picture, publish, snapshot, "127.0.0.1", 0, **kwargs)
        self.error: BaseException | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._started.wait(DEADLINE), "the web server did not start"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        async def main() -> None:
            try:
                await self.server.start()
            except BaseException as exc:  # reported to the test thread
                self.error = exc
                self._started.set()
                return
            self._started.set()
            await self.server.stopping.wait()
            await self.server.stop()

        self.loop.run_until_complete(main())
        self.loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, path: str, timeout: float = DEADLINE) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def wait_picture(self, until, timeout: float = DEADLINE) -> dict[str, Any]:
        """Read the page's own event stream until a pushed picture satisfies ``until``.

        The server pushes at least every ``push_interval``; the deadline only bounds a
        failure."""
        deadline = time.monotonic() + timeout
        last = None
        with urllib.request.urlopen(self.url + "events", timeout=timeout) as stream:
            for raw in stream:
                line = raw.decode("utf-8")
                if line.startswith("data: "):
                    last = json.loads(line[6:])
                    if until(last):
                        return last
                assert time.monotonic() < deadline, f"no pushed picture satisfied the test: {last}"
        raise AssertionError("the event stream ended")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stopping.set)
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()


@pytest.fixture
def ops_server(fake_service, layers):
    st = ServerThread(OpsPicture(layers, silence=1.0), fake_service.pub_endpoint,
                      fake_service.snap_endpoint, push_interval=0.2)
    yield st
    st.stop()


def check_ring(ring: list[list[float]], exterior: bool) -> None:
    assert len(ring) >= 4 and ring[0] == ring[-1], "ring not closed"
    # right-hand rule (RFC 7946 3.1.6): exterior counter-clockwise, holes clockwise
    assert (signed_area(ring) > 0) == exterior


def check_position(p: list[float]) -> None:
    lon, lat = p[:2]
    # lon first: near the test origin (23.8 E, 44.98 N) the two cannot be confused
    assert abs(lon - ORIGIN[0]) < 1.0 and abs(lat - ORIGIN[1]) < 1.0, p


def check_feature_collection(fc: dict[str, Any]) -> None:
    """What RFC 7946 asks of the documents we write."""
    assert fc["type"] == "FeatureCollection"
    for f in fc["features"]:
        assert f["type"] == "Feature" and "properties" in f
        g = f["geometry"]
        if g["type"] == "Point":
            check_position(g["coordinates"])
        elif g["type"] == "LineString":
            for p in g["coordinates"]:
                check_position(p)
        elif g["type"] == "Polygon":
            for i, ring in enumerate(g["coordinates"]):
                check_ring(ring, exterior=i == 0)
                for p in ring:
                    check_position(p)
        elif g["type"] == "MultiPolygon":
            for poly in g["coordinates"]:
                for i, ring in enumerate(poly):
                    check_ring(ring, exterior=i == 0)
        else:
            pytest.fail(f"unexpected geometry {g['type']}")
        assert shape(g).is_valid
