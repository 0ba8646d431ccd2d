"""Write recordings: from live feeds (``bufferzone record``) or from the simulator
(``bufferzone simulate``).

Both write the format of :mod:`replay.recording`: one header (format version, start
time, metadata) and one length-prefixed, CRC-checked frame per message, so a file cut
off by a crash is readable up to its last whole frame.

A live recording stores each message's arrival time on the recorder's wall clock
(UTC epoch seconds, ``time.time``); a simulated one stores the simulator's delivery
time (scenario seconds: measurement time plus the sensor's latency), which is what a
live run at speed 1 would have seen relative to its start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from replay.progress import progress
from replay.recording import RecordingWriter
from replay.scenario_meta import scenario_metadata
from sensors.feed import iter_messages
from sensors.scenario import Scenario
from sensors.truth import simulate_truth

log = logging.getLogger(__name__)

# Longest the receive loop goes without looking at the stop event, seconds.
_TICK_S = 0.1


@dataclass
class RecordStats:
    """What a recording run did.

    Attributes
    ----------
    frames : int
        Messages written.
    malformed : int
        Messages that were not ``[topic, payload]`` and were not written.
    per_prefix : Counter
        Messages written per topic prefix (``det.radar``, ``truth``, ...).
    ended : str
        Why it ended: ``stop``, ``count``, ``duration`` or ``idle``.
    """

    frames: int = 0
    malformed: int = 0
    per_prefix: Counter = field(default_factory=Counter)
    ended: str = ""


def record(
    ctx: zmq.Context,
    endpoints: Iterable[str],
    out: str | Path,
    *,
    metadata: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    subscribe: Iterable[bytes] = (b"",),
    max_messages: int | None = None,
    duration: float | None = None,
    idle_timeout: float | None = None,
    ready: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    overwrite: bool = False,
    stats: RecordStats | None = None,
) -> RecordStats:
    """Subscribe to publishers and append every message to a new recording.

    Parameters
    ----------
    ctx : zmq.Context
    endpoints : iterable of str
        Publisher endpoints to connect to (e.g. ``bufferzone sensors --bind``).
    out : str or Path
        Recording to create.
    metadata : mapping, optional
        Header metadata (see :mod:`replay.scenario_meta`).
    stop : threading.Event, optional
        Set it (signal handler, another thread) to end the recording within ~100 ms.
    subscribe : iterable of bytes
        Topic prefixes. The default, everything, is one subscription per connection:
        an XPUB publisher that waits for one subscription cannot start while a
        second prefix of the same subscriber is still on its way.
    max_messages : int, optional
        End after this many messages.
    duration : float, optional
        End after this many seconds of wall time from the start.
    idle_timeout : float, optional
        End after this many seconds without a message, once one has arrived (a
        finished feed says nothing more).
    ready : threading.Event, optional
        Set once the socket is connected and subscribed.
    clock : callable
        Arrival-time clock, seconds; ``time.time`` (UTC epoch) by default.
    overwrite : bool
        Replace an existing file.
    stats : RecordStats, optional
        Filled in as messages arrive (a progress line reads it from another thread).

    Returns
    -------
    RecordStats
    """
    stop = stop or threading.Event()
    stats = stats if stats is not None else RecordStats()
    endpoints = list(endpoints)
    if not endpoints:
        raise ValueError("record needs at least one endpoint to connect to")
    with (
        RecordingWriter(out, metadata, t_start=clock(), overwrite=overwrite) as writer,
        ctx.socket(zmq.SUB) as sock,
    ):
        # Nothing is sent on this socket; closing must not wait for anything.
        sock.setsockopt(zmq.LINGER, 0)
        # A recorder must not drop what it is asked to keep: a deep queue lets the
        # publisher's XPUB_NODROP back-pressure do the rest.
        sock.setsockopt(zmq.RCVHWM, 0)
        for prefix in subscribe:
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
        for endpoint in endpoints:
            sock.connect(endpoint)
        log.info("recording %s to %s", ", ".join(endpoints), out)
        if ready is not None:
            ready.set()
        started = time.monotonic()
        last_message = None
        while True:
            if stop.is_set():
                stats.ended = "stop"
                break
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                stats.ended = "duration"
                break
            if (
                idle_timeout is not None
                and last_message is not None
                and now - last_message >= idle_timeout
            ):
                stats.ended = "idle"
                break
            if max_messages is not None and stats.frames >= max_messages:
                stats.ended = "count"
                break
            if not sock.poll(int(_TICK_S * 1000), zmq.POLLIN):
                writer.flush()  # an idle moment: hand what we have to the OS
                continue
            # Drain what is queued, but come back to the checks above regularly.
            for _ in range(1000):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                t_recv = clock()
                if len(frames) != 2:
                    stats.malformed += 1
                    continue
                topic, payload = frames
                writer.write(t_recv, topic, payload)
                stats.frames += 1
                stats.per_prefix[topic.rsplit(b".", 1)[0].decode("ascii", "replace")] += 1
                if max_messages is not None and stats.frames >= max_messages:
                    break
            last_message = time.monotonic()
    log.info(
        "recording ended (%s) after %d messages (%s)",
        stats.ended,
        stats.frames,
        ", ".join(f"{k}: {v}" for k, v in sorted(stats.per_prefix.items())),
    )
    return stats


def write_simulation(
    scenario: Scenario,
    out: str | Path,
    *,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> int:
    """Write a scenario's whole feed and truth to a recording, without sockets.

    Every message goes in at its delivery time (scenario seconds); the header's
    ``t_start`` is 0 (the scenario's start) and its metadata holds the scenario,
    with its incursion list (:func:`replay.scenario_meta.scenario_metadata`).

    Parameters
    ----------
    scenario : Scenario
    out : str or Path
        Recording to create.
    overwrite : bool
        Replace an existing file.
    show_progress : bool, optional
        Force the progress bar on or off (default: on a terminal).

    Returns
    -------
    int
        Frames written.
    """
    truth = simulate_truth(scenario)
    metadata = {
        "kind": "recording",
        "writer": "bufferzone simulate",
        "scenario": scenario_metadata(scenario, truth),
    }
    with (
        RecordingWriter(out, metadata, t_start=0.0, overwrite=overwrite) as writer,
        progress(None, f"simulate {scenario.name}", enabled=show_progress) as bar,
    ):
        for t_delivery, topic, payload in iter_messages(scenario, truth, include_truth=True):
            writer.write(t_delivery, topic, payload)
            bar.update()
        return writer.frames
