"""The web server behind ``bufferzone ui``: the live map, GeoJSON, and Prometheus metrics.

Routes
------
``/``                    the map page (``static/index.html``; Leaflet ships in ``static/``)
``/events``              server-sent events: the picture at least every ``push_interval``
                         seconds, and at once when an alert opens, updates or closes
``/layers.json``         zones, sensors, origin and the tile setting for the page
``/picture.json``        the picture once (for scripts)
``/tracks.geojson``      confirmed tracks (RFC 7946 Points)
``/alerts.geojson``      open alerts (Points)
``/zones.geojson``       zones (Polygons, right-hand rule)
``/sensors.geojson``     sensor coverage, routes and positions
``/metrics``             Prometheus text format, ``bufferzone_*``
``/healthz``             ``{"service": state}``; 503 while the service is silent

The page needs nothing from the internet: without a tile URL it draws zones, coverage
and a graticule on a plain background. Server-sent events rather than WebSocket: the
page only listens, SSE is plain HTTP (proxies and curl see it), and browsers reconnect
by themselves.

One asyncio loop runs the HTTP server and the ZeroMQ feed (:mod:`replay.ops.feed`);
nothing is shared across threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path
from typing import Any

from aiohttp import web

from replay.ops import geojson, metrics
from replay.ops.feed import follow
from replay.ops.picture import OpsPicture

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Seconds between pushes when nothing urgent happens: the issue asks for at least one a
# second; twice a second keeps tracks smooth without flooding a slow client.
PUSH_INTERVAL = 0.5


def dumps(obj: Any) -> str:
    """JSON for browsers: non-finite floats become null (JSON has no NaN/Infinity)."""
    return json.dumps(_finite(obj), separators=(",", ":"))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


class OpsServer:
    """The HTTP server and the feed that keeps its picture current.

    Parameters
    ----------
    picture : OpsPicture
    publish, snapshot : str
        The service's PUB and snapshot endpoints.
    host : str
    port : int
        0 picks a free port (see :attr:`port` after :meth:`start`).
    tiles : str, optional
        A tile URL template (``https://.../{z}/{x}/{y}.png`` or a local tile server); none
        by default, so the map needs no network.
    curve : fusion.security.CurveKeys, optional
    push_interval : float
    """

    def __init__(
        self,
        picture: OpsPicture,
        publish: str,
        snapshot: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        tiles: str | None = None,
        curve: Any = None,
        push_interval: float = PUSH_INTERVAL,
    ):
        self.picture = picture
        self.publish = publish
        self.snapshot = snapshot
        self.host = host
        self.port = port
        self.tiles = tiles
        self.curve = curve
        self.push_interval = push_interval
        self.stopping = asyncio.Event()
        self.subscribed = asyncio.Event()
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._feed: asyncio.Task[None] | None = None
        self.clients = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # -- lifecycle ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/events", self._events)
        app.router.add_get("/layers.json", self._layers)
        app.router.add_get("/picture.json", self._picture)
        app.router.add_get("/tracks.geojson", self._tracks)
        app.router.add_get("/alerts.geojson", self._alerts)
        app.router.add_get("/zones.geojson", self._zones)
        app.router.add_get("/sensors.geojson", self._sensors)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_static("/static/", STATIC, show_index=False)
        return app

    async def start(self) -> None:
        """Bind the HTTP port and start the feed; returns once both are up."""
        # No access log: one line per static file and SSE stream would bury the demo's
        # terminal; the page's state is in /metrics and /healthz.
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1.0, handle_signals=False,
                                     access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        self._feed = asyncio.create_task(
            follow(self.picture, self.publish, self.snapshot, self._changed, self.stopping,
                   curve=self.curve, subscribed=self.subscribed)
        )

    async def stop(self) -> None:
        """End the SSE streams and the feed, close the HTTP server."""
        self.stopping.set()
        self._wake.set()
        if self._feed is not None:
            try:
                await asyncio.wait_for(self._feed, timeout=3.0)
            except TimeoutError:
                self._feed.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def serve(self) -> None:
        """:meth:`start`, wait until :attr:`stopping` is set, :meth:`stop`."""
        await self.start()
        try:
            await self.stopping.wait()
        finally:
            await self.stop()

    def _changed(self, alert: bool) -> None:
        if alert:
            # Wake every SSE stream now: an alert is not held for the next push.
            wake, self._wake = self._wake, asyncio.Event()
            wake.set()

    # -- handlers -------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await resp.prepare(request)
        self.clients += 1
        try:
            while not self.stopping.is_set():
                data = dumps(self.picture.to_json())
                await resp.write(f"event: picture\ndata: {data}\n\n".encode())
                wake = self._wake
                try:
                    await asyncio.wait_for(wake.wait(), timeout=self.push_interval)
                except TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the page went away, or the server is stopping
        finally:
            self.clients -= 1
        return resp

    def _json(self, obj: Any, content_type: str = "application/json") -> web.Response:
        return web.Response(text=dumps(obj), content_type=content_type)

    async def _layers(self, request: web.Request) -> web.Response:
        return self._json({**self.picture.layers.to_json(), "tiles": self.tiles,
                           "zones": geojson.zones_collection(self.picture.layers)})

    async def _picture(self, request: web.Request) -> web.Response:
        return self._json(self.picture.to_json())

    async def _tracks(self, request: web.Request) -> web.Response:
        return self._json(geojson.tracks_collection(self.picture.tracks),
                          "application/geo+json")

    async def _alerts(self, request: web.Request) -> web.Response:
        return self._json(geojson.alerts_collection(self.picture.open_alerts()),
                          "application/geo+json")

    async def _zones(self, request: web.Request) -> web.Response:
        return self._json(geojson.zones_collection(self.picture.layers), "application/geo+json")

    async def _sensors(self, request: web.Request) -> web.Response:
        return self._json(geojson.sensors_collection(self.picture.layers),
                          "application/geo+json")

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=metrics.render(self.picture))
        resp.headers["Content-Type"] = metrics.CONTENT_TYPE
        return resp

    async def _health(self, request: web.Request) -> web.Response:
        state = self.picture.service_state()
        return web.Response(
            text=dumps({"service": state}), content_type="application/json",
            status=503 if state["state"] == "silent" else 200,
        )
