"""Proof instead of sleeps for the tests and benchmarks that talk to a running service.

ZeroMQ's slow joiner bites both ends of the service:

- a publisher loses what it sends before the service's SUB has subscribed through
  the new connection (a PUB cannot tell: it drops silently);
- a subscriber misses what the service published before its own subscription arrived.

So nothing here waits a fixed time. :class:`ServicePublisher` is a detection
publisher whose connection the service has demonstrably seen: it sends probe batches
until the service's ``status`` counts one, and only then hands the socket to the
test. :class:`AlertCollector` iterates an :class:`~fusion.service.client.AlertClient`
on a thread, starts only once the client has proof of its subscription, and lets a
test wait for the alerts it is about to assert. :class:`StatusWatch` reads ``status``
until a condition holds. Every wait has a deadline (:data:`DEADLINE`, generous because
the suite must also pass with every core busy) and fails with what it last saw.

These are used by ``tests/`` (through the fixtures in ``tests/conftest.py``) and by
``benchmarks/end_to_end.py``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import zmq

from fusion import DetectionBatch, encode_batch
from fusion.messages import unpack_map
from fusion.security import CurveKeys
from fusion.service.client import AlertClient

# Seconds any single wait may take before the test fails. Far above what an idle
# machine needs; it bounds a hang, it does not pace anything.
DEADLINE = 60.0

# A probe's coverage: a square metre far outside any test area, so the empty probe
# batch charges no track a miss and moves nothing in the tracker.
PROBE_COVERAGE = np.array([[9e6, 9e6], [9e6 + 1, 9e6], [9e6 + 1, 9e6 + 1], [9e6, 9e6 + 1]])

_probe_ids = itertools.count()


def _deadline_left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


class StatusWatch:
    """A SUB on the service's ``status`` topic.

    Parameters
    ----------
    context : zmq.Context
    endpoint : str
        The service's PUB endpoint.
    curve : CurveKeys, optional
        Subscriber keys for a secured service.
    """

    def __init__(self, context: zmq.Context, endpoint: str, curve: CurveKeys | None = None):
        self.sock = context.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply_client(self.sock)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"status")
        self.sock.connect(endpoint)
        self.last: dict[str, Any] | None = None

    def next(self, timeout: float = DEADLINE) -> dict[str, Any]:
        """The next status message (the first one also proves this SUB is connected)."""
        if not self.sock.poll(int(timeout * 1e3)):
            raise AssertionError(f"no status within {timeout:g} s; last: {self.last}")
        self.last = unpack_map(self.sock.recv_multipart()[-1])
        return self.last

    def latest(self, timeout: float = DEADLINE) -> dict[str, Any]:
        """The newest status: what is queued is skipped, or the next one if none is."""
        status = None
        while self.sock.poll(0):
            status = self.next(0)
        return status if status is not None else self.next(timeout)

    def wait(
        self, until: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE
    ) -> dict[str, Any]:
        """Read status messages until ``until(status)``; return that status."""
        deadline = time.monotonic() + timeout
        while True:
            left = _deadline_left(deadline)
            if left == 0.0:
                raise AssertionError(f"condition not met within {timeout:g} s; last: {self.last}")
            status = self.next(left)
            if until(status):
                return status

    def after(self, status: dict[str, Any], timeout: float = DEADLINE) -> dict[str, Any]:
        """A status the service published after ``status`` (by its uptime)."""
        return self.wait(lambda s: s["uptime"] > status["uptime"], timeout)

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> StatusWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_batch(sensor: str, seq: int, t: float, kind: str = "radar") -> DetectionBatch:
    """A probe: no detections, a coverage that touches no track, at measurement time t."""
    return DetectionBatch.build(
        sensor, kind, seq, t, np.empty((0, 2)), np.empty((0, 2, 2)), coverage=PROBE_COVERAGE
    )


def probe_until_counted(
    send: Callable[[DetectionBatch], None],
    watch: StatusWatch,
    sensor: str,
    first_seq: int = 0,
    timeout: float = DEADLINE,
    t: float | None = None,
    resend_after: int | None = 2,
) -> tuple[dict[str, Any], int]:
    """Send probes from ``sensor`` until the service's status counts one.

    Returns that status and the next free sequence number of ``sensor``. Each probe
    may be dropped (a PUB whose connection is not up yet), so another follows after
    ``resend_after`` status messages without a count; ``None`` sends one probe only,
    for a socket known to deliver. A probe still in flight may be counted after the
    returned status; each has its own sequence number, so none is a duplicate, and
    none touches a track.

    Probe as the sensor whose data follows: the service judges batch times against
    a consensus of its sensors' times, and a probe from an id of its own would hold
    that consensus back. ``t`` defaults to the time the service judges batches
    against (its ``reference_t``, else its newest processed time ``t``, else 0), which
    is neither future nor too old.

    Nothing else may be sent to the service meanwhile: any rise of its ``received``
    counter is taken for a probe.
    """
    deadline = time.monotonic() + timeout
    before = watch.latest(timeout)
    if t is None:
        t = next((before[k] for k in ("reference_t", "t") if before.get(k) is not None), 0.0)
    seq, waited = first_seq, None
    while True:
        if waited is None or (resend_after is not None and waited >= resend_after):
            send(probe_batch(sensor, seq, t))
            seq, waited = seq + 1, 0
        left = _deadline_left(deadline)
        if left == 0.0:
            raise AssertionError(
                f"no probe counted within {timeout:g} s ({seq - first_seq} sent); "
                f"last: {watch.last}"
            )
        status = watch.next(left)
        waited += 1
        if status["rejected_total"] > before["rejected_total"]:
            raise AssertionError(f"the service rejected a probe: {status['rejected']}")
        if status["received"] > before["received"]:
            return status, seq


class ServicePublisher:
    """A detection publisher connected to the service's SUB, its connection proven.

    :meth:`open` connects an XPUB, waits until the service's subscription comes in on
    it (from then on nothing sent is dropped for want of a subscriber), sends one
    empty probe batch and waits until the service's ``status`` counts it. Exactly one
    probe is counted, so the status :meth:`open` returns is a settled baseline for
    the counters a test asserts. There is no send high-water mark: a slow service
    slows the sender down instead of losing frames.

    Parameters
    ----------
    context : zmq.Context
    endpoint : str
        The service's detection endpoint (its SUB binds it).
    watch : StatusWatch
        The service's status stream.
    curve : CurveKeys, optional
        Publisher keys for a secured service.
    probe_sensor, probe_seq, probe_t
        The probe's sensor id, sequence number and time: best the sensor whose batches
        follow, with the sequence number before its first (see
        :func:`probe_until_counted`). The default sensor is a fresh ``probe-<n>``, for
        services that see nothing else.
    """

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        watch: StatusWatch,
        curve: CurveKeys | None = None,
        probe_sensor: str | None = None,
        probe_seq: int = 0,
        probe_t: float | None = None,
    ):
        self.watch = watch
        self.sock = context.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        if curve is not None:
            curve.apply_client(self.sock)
        self.sock.connect(endpoint)
        self.probe_sensor = probe_sensor or f"probe-{next(_probe_ids)}"
        self.probe_seq = probe_seq
        self.probe_t = probe_t
        self.baseline: dict[str, Any] | None = None

    def open(self, timeout: float = DEADLINE) -> dict[str, Any]:
        """Wait for the service's subscription, then for it to count one probe.

        Returns the status that counts the probe. Raises AssertionError if either
        does not happen within ``timeout``, or if the service rejects the probe (it
        would then pollute the counters under test).
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.sock.poll(int(_deadline_left(deadline) * 1e3)):
                raise AssertionError(f"the service did not subscribe within {timeout:g} s")
            if self.sock.recv()[:1] == b"\x01":
                break
        # The subscription is in, so the one probe cannot be lost: never resend, or a
        # second probe could be counted after the baseline.
        self.baseline, _ = probe_until_counted(
            self.send_batch, self.watch, self.probe_sensor, self.probe_seq,
            _deadline_left(deadline), t=self.probe_t, resend_after=None,
        )
        return self.baseline

    def send(self, parts: Sequence[bytes]) -> None:
        self.sock.send_multipart(list(parts))

    def send_batch(self, batch: DetectionBatch) -> None:
        self.send([batch.topic, encode_batch(batch)])

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> ServicePublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AlertCollector:
    """An :class:`AlertClient` iterated on its own thread, alerts kept in :attr:`alerts`.

    :meth:`start` returns once the client has proof that its subscription is live,
    so nothing published afterwards is missed; :meth:`wait_for` blocks (on a
    condition variable, not a poll loop) until the collected alerts satisfy a
    predicate; :meth:`stop` ends the thread.
    """

    def __init__(self, client: AlertClient):
        self.client = client
        self.alerts: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.finished = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="alert-collector")

    def _run(self) -> None:
        try:
            for alert in self.client:
                with self._cond:
                    self.alerts.append(alert)
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the test thread by wait_for/stop
            self.error = exc
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def start(self, timeout: float = DEADLINE, wait_live: bool = True) -> AlertCollector:
        """Start the thread; unless told not to, return once the client is live."""
        self._thread.start()
        if wait_live and not self.client.live.wait(timeout):
            self.stop()
            raise AssertionError(f"the alert client saw no status within {timeout:g} s")
        return self

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = DEADLINE
    ) -> list[dict[str, Any]]:
        """Block until ``predicate(alerts)`` is true; return a copy of the alerts."""
        with self._cond:
            # Woken by every new alert; a predicate that also reads client.stats is
            # checked once more at the deadline.
            self._cond.wait_for(lambda: bool(predicate(self.alerts)) or self.finished, timeout)
            alerts = list(self.alerts)
        if self.error is not None:
            raise AssertionError("the alert client failed") from self.error
        if not predicate(alerts):
            raise AssertionError(
                f"alerts never satisfied the condition within {timeout:g} s "
                f"(client {'ended' if self.finished else 'running'}, stats "
                f"{self.client.stats}): {[(a['kind'], a['event']) for a in alerts]}"
            )
        return alerts

    def stop(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        self.client.stop.set()
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join(timeout)
        assert not self._thread.is_alive(), "the alert collector did not stop"
        if self.error is not None:
            raise AssertionError("the alert client failed") from self.error
        return list(self.alerts)
