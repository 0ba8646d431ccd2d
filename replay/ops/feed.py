"""The asyncio subscriber that keeps an :class:`~replay.ops.picture.OpsPicture` current.

It subscribes to the service's PUB endpoint first and then asks the snapshot endpoint
for the open alerts (the same Clone-pattern order as :class:`fusion.service.client.
AlertClient`, so nothing falls between the two), and asks again when the service's
``run`` changes (a restart). It runs on the event loop of the web server or of the
CoT sender: ``zmq.asyncio`` sockets, no thread, no lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from fusion.messages import WireError, pack_map, unpack_map
from replay.ops.picture import OpsPicture

log = logging.getLogger(__name__)

# What the picture needs from the PUB stream; "heartbeat" is the service's liveness
# topic where it has one, "status" doubles as one everywhere.
TOPICS = (b"alert.", b"track.update", b"status", b"heartbeat")


async def fetch_snapshot(
    ctx: zmq.asyncio.Context, endpoint: str, timeout: float = 5.0, curve: Any = None
) -> list[dict[str, Any]] | None:
    """The service's open alerts, or None when it does not answer within ``timeout``."""
    with ctx.socket(zmq.DEALER) as req:
        req.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply_client(req)
        req.connect(endpoint)
        await req.send_multipart([b"", pack_map({"type": "open_alerts"})])
        if not await req.poll(int(timeout * 1e3)):
            return None
        try:
            reply = unpack_map((await req.recv_multipart())[-1])
        except WireError:
            return None
    if reply.get("type") != "open_alerts":
        return None
    return list(reply.get("alerts") or [])


async def follow(
    picture: OpsPicture,
    publish: str,
    snapshot: str | None = None,
    on_change: Callable[[bool], None] = lambda alert: None,
    stop: asyncio.Event | None = None,
    context: zmq.asyncio.Context | None = None,
    curve: Any = None,
    subscribed: asyncio.Event | None = None,
) -> None:
    """Feed ``picture`` from ``publish`` until ``stop`` is set.

    Parameters
    ----------
    picture : OpsPicture
    publish, snapshot : str
        The service's PUB and snapshot (ROUTER) endpoints.
    on_change : callable
        Called after every message with True when the alert list changed (the page
        is told at once) and False otherwise.
    stop : asyncio.Event, optional
    context : zmq.asyncio.Context, optional
        A private one is made (and destroyed) when omitted.
    curve : fusion.security.CurveKeys, optional
        For a secured service.
    subscribed : asyncio.Event, optional
        Set once the first message has arrived (the subscription is in place).
    """
    stop = stop or asyncio.Event()
    ctx = context or zmq.asyncio.Context()
    try:
        with ctx.socket(zmq.SUB) as sub:
            sub.setsockopt(zmq.LINGER, 0)
            if curve is not None:
                curve.apply_client(sub)
            for topic in TOPICS:
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(publish)
            need_snapshot = snapshot is not None
            run = None
            while not stop.is_set():
                if need_snapshot and snapshot is not None:
                    alerts = await fetch_snapshot(ctx, snapshot, timeout=1.0, curve=curve)
                    if alerts is not None:
                        picture.load_snapshot(alerts)
                        need_snapshot = False
                        on_change(True)
                if not await sub.poll(100):
                    on_change(False)  # lets the page see a silence as it happens
                    continue
                frames = await sub.recv_multipart()
                try:
                    if len(frames) != 2:
                        raise WireError("frames", "expected [topic, payload]")
                    message = unpack_map(frames[1])
                except WireError as exc:
                    log.debug("ignored a message on %r: %s", frames[0][:40], exc)
                    continue
                if subscribed is not None:
                    subscribed.set()
                topic = bytes(frames[0])
                if topic == b"status":
                    new_run = message.get("run")
                    if run is not None and new_run is not None and new_run != run:
                        need_snapshot = snapshot is not None  # restarted: re-read
                    run = new_run if new_run is not None else run
                on_change(picture.on_message(topic, message))
    finally:
        if context is None:
            ctx.destroy(linger=0)
