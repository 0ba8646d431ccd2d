"""Publish a recording again, live: ``bufferzone replay FILE --publish ENDPOINT``.

The messages go out byte for byte on an XPUB socket that waits for its subscriber
(:func:`sensors.publisher.publish`), with the recorded gaps between arrivals divided
by ``speed`` (or as fast as the subscriber takes them), so the tracker service cannot
tell a replay from the sensors themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import zmq

from replay.recording import RecordingReader
from sensors.publisher import PublishStats, publish


def paced_messages(
    path: str | Path, topics: tuple[bytes, ...] = ()
) -> Iterator[tuple[float, bytes, bytes]]:
    """A recording's frames as ``(seconds since the first frame, topic, payload)``.

    Parameters
    ----------
    path : str or Path
        Recording to read; a truncated tail ends the stream with a warning.
    topics : tuple of bytes
        Only frames whose topic starts with one of these (all when empty).
    """
    with RecordingReader(path) as reader:
        t0: float | None = None
        for frame in reader:
            if topics and not frame.topic.startswith(topics):
                continue
            if t0 is None:
                t0 = frame.t_recv
            # A live recording's arrival times can step back a little (clock
            # adjustments); the publisher only ever waits forwards, so that is harmless.
            yield frame.t_recv - t0, bytes(frame.topic), bytes(frame.payload)


def play(
    ctx: zmq.Context,
    path: str | Path,
    endpoint: str,
    *,
    bind: bool = True,
    speed: float | None = 1.0,
    topics: tuple[bytes, ...] = (),
    stop: threading.Event | None = None,
    wait_subscribers: int = 1,
    wait_timeout: float = 10.0,
    linger_ms: int = 2000,
    ready: threading.Event | None = None,
) -> PublishStats:
    """Publish a recording with its original pacing scaled by ``speed``.

    Parameters
    ----------
    ctx : zmq.Context
    path : str or Path
        Recording to publish.
    endpoint : str
        Endpoint to bind (or connect, with ``bind=False``).
    speed : float or None
        Multiple of the recorded pace; None for as fast as possible.
    topics : tuple of bytes
        Only these topic prefixes (all when empty).
    stop, wait_subscribers, wait_timeout, linger_ms, ready
        As :func:`sensors.publisher.publish`.

    Returns
    -------
    PublishStats
    """
    return publish(
        ctx,
        paced_messages(path, topics),
        endpoint,
        bind=bind,
        speed=speed,
        stop=stop,
        wait_subscribers=wait_subscribers,
        wait_timeout=wait_timeout,
        linger_ms=linger_ms,
        ready=ready,
    )
