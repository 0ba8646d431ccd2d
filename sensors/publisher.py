"""The ZeroMQ publisher: sends a feed's messages paced against the wall clock.

One XPUB socket carries every sensor's batches (``det.<kind>.<id>``) and, if asked,
the truth (``truth.<scenario>``). XPUB rather than PUB so that the publisher *sees*
subscriptions arrive: it waits until ``wait_subscribers`` subscription frames came in
(or a timeout, after which it says loudly that early messages may be lost to
subscribers that join late) instead of sleeping and hoping past the slow joiner.

``XPUB_NODROP`` is set and the send high-water mark raised, so a slow subscriber
slows the publisher down instead of silently losing batches; the loop waits on the
socket (never a bare sleep) and checks a stop :class:`threading.Event` at least
every 100 ms, so Ctrl-C or another thread stops it promptly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import zmq

from fusion.security import CurveKeys

log = logging.getLogger(__name__)

# Longest the loop goes without looking at the stop event, seconds.
_TICK_S = 0.1
# Messages a subscriber may fall behind by before sends wait for it.
_SNDHWM = 100_000


@dataclass
class PublishStats:
    """What a publishing run did.

    Attributes
    ----------
    sent : int
        Messages handed to ZeroMQ.
    subscriptions : int
        Subscription frames seen before the first message went out.
    stopped : bool
        True when the stop event ended the run before the feed did.
    per_prefix : Counter
        Messages sent per topic prefix (``det.radar``, ``truth``, ...).
    """

    sent: int = 0
    subscriptions: int = 0
    stopped: bool = False
    per_prefix: Counter = field(default_factory=Counter)


def wait_for_subscribers(sock: zmq.Socket, count: int, timeout: float,
                         stop: threading.Event) -> int:
    """Read subscription frames from an XPUB socket until ``count`` arrived.

    Parameters
    ----------
    sock : zmq.Socket
        An XPUB socket with ``XPUB_VERBOSE`` set, so that every subscriber's
        subscription is reported, even for a topic someone already subscribed to.
    count : int
        Subscription frames to wait for (one per subscriber per topic prefix).
    timeout : float
        Seconds to wait at most.
    stop : threading.Event
        Ends the wait early.

    Returns
    -------
    int
        Subscription frames seen (fewer than ``count`` on timeout or stop).
    """
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count and not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if sock.poll(int(min(remaining, _TICK_S) * 1000) + 1, zmq.POLLIN):
            seen += _drain(sock)
    return seen


def _drain(sock: zmq.Socket) -> int:
    """Read every pending (un)subscription frame; return the net number of subscriptions."""
    net = 0
    while True:
        try:
            frame = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return net
        if frame[:1] == b"\x01":
            net += 1
            log.debug("subscription to %r", frame[1:])
        elif frame[:1] == b"\x00":
            net -= 1
            log.debug("unsubscription from %r", frame[1:])


def publish(
    ctx: zmq.Context,
    messages: Iterable[tuple[float, bytes, bytes]],
    endpoint: str,
    *,
    bind: bool = True,
    speed: float | None = 1.0,
    stop: threading.Event | None = None,
    wait_subscribers: int = 1,
    wait_timeout: float = 10.0,
    linger_ms: int = 2000,
    ready: threading.Event | None = None,
    curve: CurveKeys | None = None,
) -> PublishStats:
    """Publish ``(t_delivery, topic, payload)`` messages, paced or as fast as possible.

    Message ``k`` leaves at ``start + t_delivery_k / speed`` of the wall clock, where
    ``start`` is when the subscribers were ready; ``speed=None`` sends as fast as the
    subscribers take them.

    Parameters
    ----------
    ctx : zmq.Context
    messages : iterable of (float, bytes, bytes)
        In delivery-time order, e.g. :func:`sensors.feed.iter_messages`.
    endpoint : str
        ZeroMQ endpoint, e.g. ``tcp://*:5556`` to bind or ``tcp://host:5556`` to connect.
    bind : bool
        Bind (True) or connect (False) the socket.
    speed : float or None
        Multiple of real time; None for as fast as possible.
    stop : threading.Event, optional
        Set it (from a signal handler or another thread) to stop within ~100 ms.
    wait_subscribers : int
        Subscription frames to wait for before the first message; 0 not to wait.
    wait_timeout : float
        Seconds to wait for them; then start anyway, with a warning.
    linger_ms : int
        How long closing the socket may take to flush messages still queued.
    ready : threading.Event, optional
        Set once the socket is bound or connected (tests use it to know when to connect).
    curve : CurveKeys, optional
        Publish as a CURVE client of a secured service (whether the socket binds or
        connects): this sensor's key pair and the service's public key. ZeroMQ redoes
        the handshake on every reconnect, so a restarted service is rejoined as is.

    Returns
    -------
    PublishStats
    """
    stop = stop or threading.Event()
    stats = PublishStats()
    with ctx.socket(zmq.XPUB) as sock:
        # Closing flushes at most this long: long enough for a healthy subscriber,
        # short enough that a dead one cannot hang shutdown.
        sock.setsockopt(zmq.LINGER, linger_ms)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.setsockopt(zmq.SNDHWM, _SNDHWM)
        if curve is not None:
            curve.apply_client(sock)
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
        where = sock.getsockopt_string(zmq.LAST_ENDPOINT) if bind else endpoint
        log.info("publishing on %s (%s)", where, "bound" if bind else "connected")
        if ready is not None:
            ready.set()
        if wait_subscribers > 0:
            log.info("waiting up to %.1f s for %d subscription(s)", wait_timeout, wait_subscribers)
            stats.subscriptions = wait_for_subscribers(sock, wait_subscribers, wait_timeout, stop)
            if stats.subscriptions < wait_subscribers and not stop.is_set():
                log.warning(
                    "starting with %d of %d subscription(s) after %.1f s: a subscriber that "
                    "joins later misses the messages sent before it joined",
                    stats.subscriptions, wait_subscribers, wait_timeout,
                )
        else:
            log.warning("not waiting for subscribers: anything sent before a subscriber "
                        "has joined is lost to it (ZeroMQ slow joiner)")
        start = time.monotonic()
        for t_delivery, topic, payload in messages:
            if stop.is_set():
                break
            if speed is not None and not _wait_until(sock, start + t_delivery / speed, stop):
                break
            if not _send(sock, topic, payload, stop):
                break
            stats.sent += 1
            stats.per_prefix[topic.rsplit(b".", 1)[0].decode("ascii")] += 1
        stats.stopped = stop.is_set()
        log.info("%s after %d messages (%s)", "stopped" if stats.stopped else "feed done",
                 stats.sent, ", ".join(f"{k}: {v}" for k, v in sorted(stats.per_prefix.items())))
        # Sent means queued: a subscriber slower than the feed still has the tail to
        # take, and whatever it has not taken when the linger runs out is lost.
        log.info("closing: up to %.1f s (--linger) for subscribers to take what is still "
                 "queued", linger_ms / 1000.0)
    return stats


def _wait_until(sock: zmq.Socket, due: float, stop: threading.Event) -> bool:
    """Wait for the wall clock to reach ``due``, reading subscriptions meanwhile.

    Returns False if stopped first.
    """
    while (delay := due - time.monotonic()) > 0:
        if stop.is_set():
            return False
        if sock.poll(int(min(delay, _TICK_S) * 1000) + 1, zmq.POLLIN):
            _drain(sock)
    return not stop.is_set()


def _send(sock: zmq.Socket, topic: bytes, payload: bytes, stop: threading.Event) -> bool:
    """Send one message, waiting while a subscriber's queue is full (XPUB_NODROP)."""
    while True:
        try:
            sock.send_multipart([topic, payload], flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            # A subscriber is HWM messages behind: back off briefly, then retry.
            # POLLOUT cannot be used here, XPUB reports it even when a pipe is full.
            if stop.wait(0.002):
                return False
            _drain(sock)
