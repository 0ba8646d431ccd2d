"""The tracker service's ZeroMQ loop: the one place in ``fusion`` that binds sockets.

Sockets
-------
- SUB on every ``det_connect`` endpoint (connects) and ``det_bind`` (binds), subscribed
  to ``det.``: detection batches.
- PUB on ``publish``: ``alert.<zone>.<kind>``, ``track.update``, ``status``.
- ROUTER on ``snapshot``: a request ``{"type": "open_alerts"}`` is answered with the
  currently open alerts (the snapshot half of the ZeroMQ guide's Clone pattern; the
  client subscribes first, then asks, so nothing falls between the two).

Fairness and bounds
-------------------
One loop turn receives at most ``_DRAIN_PER_TURN`` detection messages (none while
``max_held`` batches wait in the reorder buffer, so ZeroMQ's high-water mark, not our
memory, absorbs a flood), answers at most ``_ANSWERS_PER_TURN`` snapshot requests
(each peer at most ``_SNAPSHOT_RATE`` a second, beyond which it gets a cheap
``rate_limited`` error), and processes batches for at most ``_RELEASE_SECONDS``. So
detection processing never waits behind requests, and a stop request is seen within
one turn. Transport limits: ``ZMQ_MAXMSGSIZE`` on both receiving sockets drops an
oversized message before it is buffered (for detections: the largest batch the
budgets admit, see :func:`largest_batch_bytes`; ``_MAX_REQUEST_BYTES`` for requests),
and the sender is dropped; status counts it under ``connections`` as
``detections.disconnected``, beside refused CURVE handshakes per socket role.
High-water marks of ``_DET_HWM`` (per publisher) and ``_PUB_HWM`` messages and
``_REQUEST_HWM`` requests bound the queues.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections import Counter, OrderedDict
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from fusion.config import ConfigError
from fusion.messages import (
    MAX_COVERAGE_VERTICES,
    MAX_PAYLOAD_BYTES,
    WireError,
    pack_map,
    unpack_map,
)
from fusion.security import (
    DOMAIN_DETECTIONS,
    DOMAIN_SUBSCRIBERS,
    INSECURE_BANNER,
    CurveServer,
)
from fusion.service.pipeline import Pipeline
from fusion.service.recovery import save_checkpoint
from fusion.service.settings import ServiceConfig
from fusion.service.witness import EvidenceKeeper

log = logging.getLogger(__name__)

def largest_batch_bytes(config: ServiceConfig) -> int:
    """Frame size of the largest batch the budgets admit, with room for the header.

    Per detection: ``z`` (2 x f8), ``R`` (3 x f8), ``cls`` (u1) and ``conf`` (f4) plus
    msgpack framing; plus the largest coverage polygon.
    """
    detections = max(config.max_batch_detections.values(), default=0)
    per_detection = 2 * 8 + 3 * 8 + 1 + 4
    size = int(detections) * per_detection + MAX_COVERAGE_VERTICES * 16 + 64 * 1024
    return min(size, MAX_PAYLOAD_BYTES + 4096)


_DRAIN_PER_TURN = 256
_RELEASE_EVERY = 32  # messages received between two releases of due batches
_ANSWERS_PER_TURN = 16
_RELEASE_SECONDS = 0.05
_SNAPSHOT_RATE = 2.0  # requests per second per peer, with a burst of _SNAPSHOT_BURST
_SNAPSHOT_BURST = 5.0
_SNAPSHOT_PEERS = 4096  # peers whose request budget is remembered
_MAX_REQUEST_BYTES = 64 * 1024
_DET_HWM = 1_000  # per connected publisher: a flood fills its own queue, not ours
_PUB_HWM = 100_000
_REQUEST_HWM = 1_000
# Seconds a stopping service spends on what is still queued before it checkpoints the
# rest (held batches are part of the checkpoint) and exits.
_STOP_SECONDS = 0.5
_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
)


class TrackerService:
    """The socket loop around a :class:`Pipeline`.

    Parameters
    ----------
    pipeline : Pipeline
    config : ServiceConfig
    context : zmq.Context, optional
        Shared context; a private one is made (and terminated) if omitted. With
        ``security`` the ZAP authenticator runs on it, and libzmq allows one per
        context: one secured service per context.
    security : CurveServer, optional
        CurveZMQ on every socket, with allow-lists and the sensor-key policy; without
        it the service runs in the clear and says so loudly.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        config: ServiceConfig,
        context: zmq.Context | None = None,
        security: CurveServer | None = None,
    ):
        if not (config.det_connect or config.det_bind):
            raise ConfigError(
                "service: give at least one detection endpoint (det_connect or det_bind)"
            )
        self.pipeline = pipeline
        if pipeline.liveness is None:
            pipeline.enable_ops()  # live: UTC/lon-lat stamps, sensor liveness (issue 15)
        self.config = config
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.security = security
        # Snapshot requests per peer: (requests it may still make, clock time of that count).
        self._request_budget: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self.requests: Counter[str] = Counter()
        self.connections: Counter[str] = Counter()
        self._monitor_role: dict[zmq.Socket, str] = {}
        self._monitors: list[zmq.Socket] = []
        if security is not None:
            pipeline.authorize = security.policy
            pipeline.status_extra = lambda: {
                "secure": True, "auth_denied": security.denied_counts(),
                "requests": dict(self.requests), "connections": dict(self.connections),
            }
        else:
            pipeline.status_extra = lambda: {
                "secure": False, "auth_denied": {}, "requests": dict(self.requests),
                "connections": dict(self.connections),
            }
        # Signed log heads (witnesses on status), the CONFIG record, raw input kept.
        self.evidence = EvidenceKeeper(pipeline, config)
        base_extra = pipeline.status_extra
        pipeline.status_extra = lambda: {**base_extra(), **self.evidence.status()}

    def checkpoint(self) -> bool:
        """Write the pipeline's state to ``config.checkpoint`` now; False if it failed."""
        if not self.config.checkpoint:
            return False
        pipe = self.pipeline
        try:
            size = save_checkpoint(self.config.checkpoint, pipe.state_dict())
        except Exception:  # a full disk must not stop tracking; it is counted and logged
            pipe.checkpoints["failed"] += 1
            log.error(
                "checkpoint to %s failed:\n%s", self.config.checkpoint, traceback.format_exc()
            )
            return False
        pipe.checkpoints["written"] += 1
        pipe.checkpoints["bytes"] = size
        return True

    def stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self.stop_event.set()

    def run(self) -> dict[str, Any]:
        """Serve until :meth:`stop`; flush what is held, publish a last status, return it."""
        ctx = self.context
        if self.security is None:
            log.warning(INSECURE_BANNER)
        else:
            self.security.start(ctx)  # ZAP handler first: a bind before it admits anyone
            log.info("%s", self.security.summary)
        try:
            with (
                ctx.socket(zmq.SUB) as sub,
                ctx.socket(zmq.PUB) as pub,
                ctx.socket(zmq.ROUTER) as router,
            ):
                self._open(sub, pub, router)
                self._monitors = self._watch_handshakes({"detections": sub, "publish": pub,
                                                         "snapshot": router})

                def send(topic: bytes, payload: bytes) -> None:
                    pub.send_multipart([topic, payload])

                self.pipeline.emit = send
                self.evidence.start()
                self.ready.set()
                self._serve(sub, pub, router)
                return self._finish(sub, pub)
        finally:
            self._release()

    def _open(self, sub: zmq.Socket, pub: zmq.Socket, router: zmq.Socket) -> None:
        """Set the sockets' options and security, then bind and connect them."""
        cfg = self.config
        for sock in (sub, pub, router):
            sock.setsockopt(zmq.LINGER, 1000)  # let the last status and alerts out
        # Refused by libzmq before it is buffered (the sender is disconnected and that is
        # counted): one huge frame cannot cost memory nor decoding time.
        sub.setsockopt(zmq.MAXMSGSIZE, largest_batch_bytes(cfg))
        router.setsockopt(zmq.MAXMSGSIZE, _MAX_REQUEST_BYTES)
        sub.setsockopt(zmq.RCVHWM, _DET_HWM)
        pub.setsockopt(zmq.SNDHWM, _PUB_HWM)
        router.setsockopt(zmq.RCVHWM, _REQUEST_HWM)
        sub.setsockopt(zmq.SUBSCRIBE, b"det.")
        if self.security is not None:
            self.security.secure(sub, DOMAIN_DETECTIONS)
            self.security.secure(pub, DOMAIN_SUBSCRIBERS)
            self.security.secure(router, DOMAIN_SUBSCRIBERS)
        for endpoint in cfg.det_bind:
            sub.bind(endpoint)
        for endpoint in cfg.det_connect:
            sub.connect(endpoint)
        pub.bind(cfg.publish)
        if cfg.snapshot:
            router.bind(cfg.snapshot)
        log.info(
            "tracking: detections on %s, publishing on %s, snapshots on %s",
            ", ".join(cfg.det_bind + cfg.det_connect),
            cfg.publish,
            cfg.snapshot or "-",
        )

    def _serve(self, sub: zmq.Socket, pub: zmq.Socket, router: zmq.Socket) -> None:
        """The loop: receive, answer snapshots, release, and run the timers until stopped."""
        cfg, pipe = self.config, self.pipeline
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(router, zmq.POLLIN)
        for monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        next_tracks = next_status = time.monotonic()
        next_checkpoint = next_tracks + cfg.checkpoint_interval
        while not self.stop_event.is_set():
            wait = pipe.next_release_in()
            timeout = 100.0 if wait is None else min(100.0, wait * 1e3)
            events = dict(poller.poll(int(timeout)))
            if sub in events and pipe.held < cfg.max_held:
                self._drain(sub, limit=_DRAIN_PER_TURN)
            if router in events:
                self._answer(router)
            for monitor in self._monitors:
                if monitor in events:
                    self._count_handshakes(monitor)
            pipe.release(until=time.perf_counter() + _RELEASE_SECONDS)
            now = time.monotonic()
            if now >= next_tracks:
                pipe.timer(now)
                pub.send_multipart([b"track.update", pipe.track_message()])
                pub.send_multipart([b"heartbeat", pack_map(pipe.heartbeat())])
                next_tracks = now + cfg.track_interval
            if now >= next_status:
                pub.send_multipart([b"status", pack_map(pipe.status())])
                next_status = now + cfg.status_interval
            if cfg.checkpoint and now >= next_checkpoint:
                self.checkpoint()
                next_checkpoint = time.monotonic() + cfg.checkpoint_interval
            self.evidence.tick(now)

    def _finish(self, sub: zmq.Socket, pub: zmq.Socket) -> dict[str, Any]:
        """Flush what we owe (the socket's queue, then the reorder buffer); the last status."""
        pipe = self.pipeline
        self._drain(sub, deadline=time.monotonic() + _STOP_SECONDS)
        # With a checkpoint, what is still held is saved in it: stop promptly. Without
        # one, everything accepted is processed first (it would be lost otherwise).
        until = time.perf_counter() + _STOP_SECONDS if self.config.checkpoint else None
        pipe.release(flush=True, until=until)
        pipe.timer(time.monotonic())
        pub.send_multipart([b"track.update", pipe.track_message()])
        self.evidence.finish()  # the head signed at shutdown, before the last status
        self.checkpoint()
        final = pipe.status()
        final["final"] = True
        pub.send_multipart([b"status", pack_map(final)])
        log.info(
            "stopped: %d batches, %d detections, %d rejected, %d late",
            final["batches"],
            final["detections"],
            final["rejected_total"],
            final["late_batches"],
        )
        return final

    def _watch_handshakes(self, sockets: dict[str, zmq.Socket]) -> list[zmq.Socket]:
        """Monitor handshakes and disconnects, so refused peers (a plaintext publisher
        knocking on a CURVE socket, a wrong key, a frame over the size limit) are counted
        in status instead of vanishing."""
        monitors = []
        for role, sock in sockets.items():
            events = _HANDSHAKE_EVENTS if self.security is not None else 0
            if role == "detections":
                events |= zmq.EVENT_DISCONNECTED
            if not events:
                continue
            monitor = sock.get_monitor_socket(events)
            monitor.setsockopt(zmq.LINGER, 0)
            self._monitor_role[monitor] = role
            monitors.append(monitor)
        return monitors

    def _count_handshakes(self, monitor: zmq.Socket) -> None:
        role = self._monitor_role[monitor]
        for _ in range(_DRAIN_PER_TURN):
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            name = str(zmq.Event(event["event"]).name).lower()
            if name != "monitor_stopped":
                self.connections[f"{role}.{name.removeprefix('handshake_')}"] += 1

    def _release(self) -> None:
        """Close the alert log, stop the authenticator and end a context we made."""
        for monitor in getattr(self, "_monitors", []):
            monitor.close(linger=0)
        if self.pipeline.alert_log is not None:
            self.pipeline.alert_log.close()
        if self.security is not None:
            self.security.stop()
        if self._own_context:
            self.context.term()

    def _drain(
        self, sub: zmq.Socket, limit: int | None = None, deadline: float | None = None
    ) -> int:
        """Receive what is queued on ``sub`` (up to ``limit`` messages or ``deadline``)."""
        n = 0
        while limit is None or n < limit:
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                # copy=False keeps the frames' metadata: the authenticated User-Id.
                parts = sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            user_id = None
            if self.security is not None:
                try:
                    user_id = str(parts[0].get("User-Id"))
                except zmq.ZMQError:
                    user_id = None
            message = [p.bytes for p in parts]
            if self.pipeline.receive(message, user_id=user_id):
                self.evidence.accepted(message, user_id)
            n += 1
            if n % _RELEASE_EVERY == 0:
                # A legitimate batch must not wait behind a whole turn of junk to decode.
                self.pipeline.release(until=time.perf_counter() + _RELEASE_SECONDS)
        return n

    def _answer(self, router: zmq.Socket) -> None:
        """Answer open-alert requests, fairly and boundedly; malformed ones get an error."""
        snapshot: bytes | None = None  # packed once per turn, however many ask
        for _ in range(_ANSWERS_PER_TURN):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, body = frames[0], frames[-1]
            self.requests["received"] += 1
            if not self._may_ask(identity):
                self.requests["rate_limited"] += 1
                reply = pack_map({"type": "error", "reason": "rate_limited",
                                  "message": f"at most {_SNAPSHOT_RATE:g} requests a second"})
                router.send_multipart([identity, b"", reply])
                continue
            try:
                request = unpack_map(body)
                if request.get("type") != "open_alerts":
                    raise WireError("request", f"unknown request type {request.get('type')!r}")
                if snapshot is None:
                    snapshot = pack_map(self._snapshot())
                reply = snapshot
            except WireError as exc:
                self.pipeline.rejected[f"request_{exc.reason}"] += 1
                reply = pack_map({"type": "error", "reason": exc.reason, "message": str(exc)})
            router.send_multipart([identity, b"", reply])

    def _snapshot(self) -> dict[str, Any]:
        pipe = self.pipeline
        return {
            "type": "open_alerts",
            "alerts": pipe.engine.open_alerts()
            + (pipe.liveness.open_alerts() if pipe.liveness is not None else []),
            "t": None if math.isinf(pipe.processed_until) else pipe.processed_until,
            # what the snapshot already holds, so clients drop older alerts
            "run": pipe.run_id,
            "alert_seq": dict(pipe.alert_seq),
            "zones": sorted(pipe.engine.zones.names),
        }

    def _may_ask(self, identity: bytes) -> bool:
        """A token bucket per peer; the least recently seen peers are forgotten first."""
        now = time.monotonic()
        left, at = self._request_budget.pop(identity, (_SNAPSHOT_BURST, now))
        left = min(_SNAPSHOT_BURST, left + _SNAPSHOT_RATE * (now - at))
        allowed = left >= 1.0
        self._request_budget[identity] = (left - 1.0 if allowed else left, now)
        if len(self._request_budget) > _SNAPSHOT_PEERS:
            self._request_budget.popitem(last=False)
        return allowed
