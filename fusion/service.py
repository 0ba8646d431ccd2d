"""The tracker service: ZeroMQ in, tracks and alerts out.

This is the one module in ``fusion`` that owns sockets. The numeric core (tracker,
zones, alert rules) never sees one; :class:`Pipeline` holds the per-message logic
(validation, reordering, tracking, alerting, counters) with no sockets either, so
replay and tests drive it in-process, and :class:`TrackerService` is the thin loop
around it.

Sockets
-------
- SUB on every ``det_connect`` endpoint (connects) and ``det_bind`` (binds), subscribed
  to ``det.``: detection batches.
- PUB on ``publish``: ``alert.<zone>.<kind>``, ``track.update``, ``status``.
- ROUTER on ``snapshot``: a request ``{"type": "open_alerts"}`` is answered with the
  currently open alerts (the snapshot half of the ZeroMQ guide's Clone pattern; the
  client subscribes first, then asks, so nothing falls between the two).

Ordering
--------
Batches are held in a reorder buffer keyed by measurement time and released once
newer data has pushed the watermark ``reorder_window`` seconds past them, or once they
have waited ``reorder_window`` seconds of wall-clock time (so a quiet feed is not held
forever). A batch older than what the tracker already processed is *late*: it is
counted and still fused (the tracker's out-of-sequence update); a batch older than
``max_lateness`` is rejected as ``too_old``, with its count in ``status``.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from fusion.alertlog import AlertLog, read_alert_log
from fusion.alerts import AlertEngine
from fusion.checkpoint import CheckpointError, load_checkpoint, reconcile, save_checkpoint
from fusion.config import ConfigError, from_mapping, load_toml
from fusion.messages import (
    CLASSES,
    DetectionBatch,
    WireError,
    decode_batch,
    encode_batch,
    pack_map,
    unpack_map,
)
from fusion.security import (
    DOMAIN_DETECTIONS,
    DOMAIN_SUBSCRIBERS,
    INSECURE_BANNER,
    CurveServer,
)
from fusion.tracker import Tracker
from fusion.tracks import CONFIRMED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """Endpoints and timing of the service; the ``[service]`` table of a TOML file.

    Attributes
    ----------
    det_connect, det_bind : tuple of str
        Endpoints the detection SUB socket connects to / binds.
    publish : str
        Endpoint the PUB socket (alerts, tracks, status) binds.
    snapshot : str
        Endpoint the ROUTER socket for open-alert requests binds; "" for none.
    reorder_window : float
        Seconds batches are held to be put in measurement-time order.
    alert_interval : float
        Measurement-time seconds between alert-rule evaluations; batches in between
        only add evidence, and their deleted tracks are handed to the next evaluation.
    max_lateness : float
        Batches older than the newest processed time by more than this are rejected.
    max_future : float
        Batches newer than the newest accepted time by more than this are rejected.
    track_interval, status_interval : float
        Wall-clock seconds between track pictures / status messages.
    alert_log : str
        Path of the durable alert log; "" for none.
    sensors : tuple of str
        Allowed sensor ids; empty allows any well-formed id.
    max_sensors : int
        Distinct sensor ids remembered at most; batches from further ids are rejected
        (``too_many_sensors``) so invented ids cannot grow the per-sensor tables.
    checkpoint : str
        Path of the checkpoint file (tracker, alert engine, counters); "" for none.
    checkpoint_interval : float
        Wall-clock seconds between checkpoints.
    """

    det_connect: tuple[str, ...] = ()
    det_bind: tuple[str, ...] = ()
    publish: str = "tcp://127.0.0.1:5560"
    snapshot: str = "tcp://127.0.0.1:5561"
    reorder_window: float = 0.5
    alert_interval: float = 0.5
    max_lateness: float = 300.0
    max_future: float = 3600.0
    track_interval: float = 1.0
    status_interval: float = 2.0
    alert_log: str = ""
    sensors: tuple[str, ...] = ()
    max_sensors: int = 10_000
    checkpoint: str = ""
    checkpoint_interval: float = 10.0

    def __post_init__(self) -> None:
        for name in ("reorder_window", "alert_interval", "max_lateness", "max_future"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"service.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("track_interval", "status_interval", "checkpoint_interval"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"service.{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "service") -> ServiceConfig:
        return from_mapping(cls, load_toml(path).get(table, {}), table)


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` in milliseconds (zeros when empty)."""
    a = np.fromiter(values, dtype=float)
    if a.size == 0:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": float(p50) * 1e3, "p99": float(p99) * 1e3, "max": float(a.max()) * 1e3}


@dataclass
class Pipeline:
    """Everything between a received message and the alerts it causes; no sockets.

    Parameters
    ----------
    tracker : Tracker
    engine : AlertEngine
    config : ServiceConfig
    emit : callable
        ``emit(topic: bytes, payload: bytes)`` for every outgoing message.
    alert_log : AlertLog, optional
        Alerts are appended here before they are emitted.
    clock : callable
        Wall clock in seconds (``time.monotonic``); injectable for tests.
    authorize : callable, optional
        ``authorize(sensor_id, user_id) -> bool``: may the connection authenticated as
        ``user_id`` (the CURVE ``User-Id``) send for this sensor? Refusals are counted
        as ``spoofed_sensor``. None (insecure mode) accepts every sender.

    Notes
    -----
    Every alert message carries ``run`` (random per service start) and ``seq`` (per
    topic, from 1), and ``status`` carries the newest ``alert_seq`` per topic: a
    subscriber sees a restart as a new ``run`` and a loss (a PUB high-water-mark drop
    or a reconnect) as a gap in ``seq``. The PUB socket cannot see its own drops, so
    those counts live in each subscriber (:class:`fusion.client.AlertClient`).
    """

    tracker: Tracker
    engine: AlertEngine
    config: ServiceConfig = field(default_factory=ServiceConfig)
    emit: Callable[[bytes, bytes], None] = lambda topic, payload: None
    alert_log: AlertLog | None = None
    clock: Callable[[], float] = time.monotonic
    authorize: Callable[[str, str | None], bool] | None = None

    def __post_init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.gaps: Counter[str] = Counter()
        self.alerts_by_kind: Counter[str] = Counter()
        self.last_seq: dict[str, int] = {}
        self.latencies: deque[float] = deque(maxlen=2048)
        # Where the time goes, summed over the run (wall seconds; reorder_wait on clock).
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.newest_accepted = -math.inf
        self.processed_until = -math.inf
        self._rules_evaluated_at = -math.inf
        # Track ids deleted since the last rule evaluation (so lost_inside says "deleted").
        self._pending_deleted: list[np.ndarray] = []
        self._heap: list[tuple[float, int, float, DetectionBatch]] = []
        self._arrivals = 0
        self._allowed = frozenset(self.config.sensors)
        self.started = self.clock()
        self.run_id = os.urandom(6).hex()
        self.alert_seq: Counter[str] = Counter()
        self.checkpoints = {"written": 0, "failed": 0, "bytes": 0}
        self.restored: dict[str, Any] = {}
        self.status_extra: Callable[[], dict[str, Any]] = dict

    # -- intake ---------------------------------------------------------------------

    def receive(
        self, frames: list[bytes], t_recv: float | None = None, user_id: str | None = None
    ) -> bool:
        """Validate one multipart message and queue it; False (and counted) if rejected.

        Parameters
        ----------
        frames : list of bytes
            ``[topic, payload]``.
        t_recv : float, optional
            Arrival time on :attr:`clock` (now if omitted).
        user_id : str, optional
            The authenticated sender (CURVE ``User-Id``), checked by :attr:`authorize`.

        Never raises because of the message's content.
        """
        t_recv = self.clock() if t_recv is None else t_recv
        started = time.perf_counter()
        try:
            batch = self._accept(frames, user_id)
        except WireError as exc:
            self.stage_seconds["decode"] += time.perf_counter() - started
            self.rejected[exc.reason] += 1
            if self.rejected[exc.reason] <= 5 or self.rejected[exc.reason] % 1000 == 0:
                log.warning(
                    "rejected message (%d so far for %s): %s",
                    self.rejected[exc.reason],
                    exc.reason,
                    exc,
                )
            return False
        self.stage_seconds["decode"] += time.perf_counter() - started
        heapq.heappush(self._heap, (batch.t, self._arrivals, t_recv, batch))
        self._arrivals += 1
        self.newest_accepted = max(self.newest_accepted, batch.t)
        self.counters["received"] += 1
        return True

    def _accept(self, frames: list[bytes], user_id: str | None = None) -> DetectionBatch:
        if len(frames) != 2:
            raise WireError("frames", f"expected [topic, payload], got {len(frames)} frames")
        topic, payload = frames
        batch = decode_batch(payload)
        if bytes(topic) != batch.topic:
            raise WireError("topic", f"topic {bytes(topic)[:80]!r} does not match {batch.topic!r}")
        if self.authorize is not None and not self.authorize(batch.sensor_id, user_id):
            # Before any per-sensor bookkeeping: a spoofer must not move the real
            # sensor's sequence number or time reference.
            raise WireError(
                "spoofed_sensor",
                f"key {user_id} is not registered for sensor {batch.sensor_id!r}",
            )
        if self._allowed and batch.sensor_id not in self._allowed:
            raise WireError("unknown_sensor", f"sensor {batch.sensor_id!r} is not configured")
        if batch.sensor_id not in self.last_seq and len(self.last_seq) >= self.config.max_sensors:
            raise WireError(
                "too_many_sensors",
                f"already {len(self.last_seq)} sensors; {batch.sensor_id!r} refused",
            )
        # The first batch sets the time reference; later ones are held to it.
        if (
            math.isfinite(self.newest_accepted)
            and batch.t > self.newest_accepted + self.config.max_future
        ):
            raise WireError(
                "future",
                f"time {batch.t:.3f} is more than {self.config.max_future:g} s "
                f"after the newest accepted {self.newest_accepted:.3f}",
            )
        if batch.t < self.processed_until - self.config.max_lateness:
            raise WireError(
                "too_old",
                f"time {batch.t:.3f} is more than {self.config.max_lateness:g} s "
                f"before the newest processed {self.processed_until:.3f}",
            )
        last = self.last_seq.get(batch.sensor_id)
        if last is not None:
            if batch.seq <= last:
                raise WireError(
                    "duplicate", f"sensor {batch.sensor_id} sent seq {batch.seq} after {last}"
                )
            if batch.seq > last + 1:
                self.gaps[batch.sensor_id] += batch.seq - last - 1
                log.warning(
                    "sensor %s: %d message(s) missing before seq %d",
                    batch.sensor_id,
                    batch.seq - last - 1,
                    batch.seq,
                )
        self.last_seq[batch.sensor_id] = batch.seq
        return batch

    # -- release and processing -----------------------------------------------------

    def next_release_in(self) -> float | None:
        """Wall-clock seconds until the oldest held batch is due; None when empty."""
        if not self._heap:
            return None
        oldest_recv = min(entry[2] for entry in self._heap[:8])
        return max(0.0, oldest_recv + self.config.reorder_window - self.clock())

    def release(self, flush: bool = False) -> int:
        """Process every batch that is due (all of them with ``flush``); return how many."""
        done = 0
        now = self.clock()
        window = self.config.reorder_window
        while self._heap:
            t, _, t_recv, batch = self._heap[0]
            due = flush or t <= self.newest_accepted - window or now - t_recv >= window
            if not due:
                break
            heapq.heappop(self._heap)
            self.stage_seconds["reorder_wait"] += now - t_recv
            self._process(batch, t_recv)
            done += 1
        return done

    def _process(self, batch: DetectionBatch, t_recv: float) -> None:
        try:
            late = batch.t < self.processed_until
            started = time.perf_counter()
            result = self.tracker.process(batch)
            self.stage_seconds["tracker"] += time.perf_counter() - started
            if late:
                self.counters["late_batches"] += 1
                if self.counters["late_batches"] <= 5:
                    log.info(
                        "late batch from %s (%.1f s behind): fused out of sequence into "
                        "%d track(s)",
                        batch.sensor_id,
                        self.processed_until - batch.t,
                        result.n_late,
                    )
            self.processed_until = max(self.processed_until, batch.t)
            now = self.tracker.latest_time
            if result.deleted.size:
                self._pending_deleted.append(result.deleted)
            if now - self._rules_evaluated_at >= self.config.alert_interval:
                self._evaluate_rules(result.updated, batch.sensor_id)
            else:
                self.engine.record_evidence(now, result.updated, batch.sensor_id)
            self.counters["batches"] += 1
            self.counters["detections"] += len(batch)
            self.latencies.append(self.clock() - t_recv)
        except Exception:  # never let one batch stop the service
            self.rejected["internal"] += 1
            log.error(
                "internal error on a batch from %s:\n%s", batch.sensor_id, traceback.format_exc()
            )

    def _evaluate_rules(
        self,
        updated: np.ndarray | None = None,
        sensor_id: str | None = None,
    ) -> None:
        """Run the alert rules on every confirmed track, predicted to the newest time."""
        started = time.perf_counter()
        now = self.tracker.latest_time
        snap = self.tracker.confirmed(at=now)
        deleted = np.concatenate(self._pending_deleted) if self._pending_deleted else None
        self._pending_deleted.clear()
        events = self.engine.step(
            now,
            snap.ids,
            snap.x,
            snap.P,
            snap.cls,
            snap.conf,
            updated_ids=updated,
            sensor_id=sensor_id,
            deleted_ids=deleted,
        )
        self._rules_evaluated_at = now
        self.stage_seconds["rules"] += time.perf_counter() - started
        self._publish_alerts(events)

    def _publish_alerts(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        started = time.perf_counter()
        if self.alert_log is not None:
            self.alert_log.append_many(events)  # durable before anyone hears of it
        for event in events:
            self.alerts_by_kind[f"{event['kind']}.{event['event']}"] += 1
            name = f"alert.{event['zone']}.{event['kind']}"
            self.alert_seq[name] += 1
            message = {"type": "alert", **event, "run": self.run_id, "seq": self.alert_seq[name]}
            self.emit(name.encode("ascii"), pack_map(message))
        self.stage_seconds["log_and_publish"] += time.perf_counter() - started

    # -- outgoing pictures ----------------------------------------------------------

    def track_message(self) -> bytes:
        """The confirmed track picture, columnar like detection batches."""
        snap = self.tracker.confirmed()
        P_pos = snap.P[:, :2, :2]
        return pack_map(
            {
                "type": "tracks",
                "t": float(self.tracker.latest_time) if len(self.tracker) else None,
                "n": len(snap),
                "ids": snap.ids.astype("<i8").tobytes(),
                "x": snap.x.astype("<f8").tobytes(),
                "P_pos": np.stack([P_pos[:, 0, 0], P_pos[:, 0, 1], P_pos[:, 1, 1]], 1)
                .astype("<f8")
                .tobytes(),
                "t_state": snap.t.astype("<f8").tobytes(),
                "cls": snap.cls.astype("u1").tobytes(),
                "conf": snap.conf.astype("<f4").tobytes(),
            }
        )

    def status(self) -> dict[str, Any]:
        """Counters for operators: what came in, what was refused, how fast."""
        return {
            "type": "status",
            "uptime": self.clock() - self.started,
            "received": self.counters["received"],
            "batches": self.counters["batches"],
            "detections": self.counters["detections"],
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "gaps": dict(self.gaps),
            "late_batches": self.counters["late_batches"],
            "oosm_updates": self.tracker.stats["oosm_updates"],
            "held": len(self._heap),
            "live_tracks": len(self.tracker),
            "confirmed_tracks": int(np.count_nonzero(self.tracker.tracks.status)),
            "tracks_confirmed_total": self.tracker.stats["confirmed"],
            "open_alerts": len(self.engine.open_alerts()),
            "alerts": dict(self.alerts_by_kind),
            "latency_ms": percentiles(self.latencies),
            "stage_ms_per_batch": {
                stage: 1e3 * seconds / max(self.counters["batches"], 1)
                for stage, seconds in sorted(self.stage_seconds.items())
            },
            "t": None if math.isinf(self.processed_until) else self.processed_until,
            "run": self.run_id,
            "status_interval": self.config.status_interval,
            "alert_seq": dict(self.alert_seq),
            "sensors_seen": len(self.last_seq),
            "checkpoints": dict(self.checkpoints),
            "restored": self.restored,
            **self.status_extra(),
        }

    # -- checkpoints ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: tracker, alert engine, counters, held batches.

        ``log_records`` is how many records the alert log held at this instant; see
        :mod:`fusion.checkpoint` for how a restart reconciles the two.
        """
        finite = lambda v: None if math.isinf(v) else float(v)  # noqa: E731
        return {
            "tracker": self.tracker.state_dict(),
            "tracker_stats": dict(self.tracker.stats),
            "engine": self.engine.state_dict(),
            "log_records": 0 if self.alert_log is None else self.alert_log.records,
            "counters": dict(self.counters),
            "rejected": dict(self.rejected),
            "gaps": dict(self.gaps),
            "alerts_by_kind": dict(self.alerts_by_kind),
            "alert_seq": dict(self.alert_seq),
            "last_seq": dict(self.last_seq),
            "newest_accepted": finite(self.newest_accepted),
            "processed_until": finite(self.processed_until),
            "rules_evaluated_at": finite(self._rules_evaluated_at),
            # Received but not yet processed: kept as wire bytes, re-queued on restore.
            "held": [encode_batch(entry[3]) for entry in sorted(self._heap)],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (already reconciled with the alert log)."""
        back = lambda v: -math.inf if v is None else float(v)  # noqa: E731
        self.tracker.load_state_dict(state["tracker"])
        self.tracker.stats.update(state.get("tracker_stats", {}))
        if state.get("engine") is not None:
            self.engine.load_state_dict(state["engine"])
        self.counters = Counter(state["counters"])
        self.rejected = Counter(state["rejected"])
        self.gaps = Counter(state["gaps"])
        self.alerts_by_kind = Counter(state["alerts_by_kind"])
        self.alert_seq = Counter(state["alert_seq"])
        self.last_seq = {k: int(v) for k, v in state["last_seq"].items()}
        self.newest_accepted = back(state["newest_accepted"])
        self.processed_until = back(state["processed_until"])
        self._rules_evaluated_at = back(state["rules_evaluated_at"])
        now = self.clock()
        self._heap = []
        for payload in state.get("held", []):
            batch = decode_batch(payload)
            heapq.heappush(self._heap, (batch.t, self._arrivals, now, batch))
            self._arrivals += 1

    def timer(self, t_wall: float) -> None:
        """Let dwell times and holds run out while no batch arrives."""
        if math.isfinite(self.tracker.latest_time):
            try:
                self._evaluate_rules()
            except Exception:
                self.rejected["internal"] += 1
                log.error("internal error in the alert timer:\n%s", traceback.format_exc())


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
        self.config = config
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.security = security
        if security is not None:
            pipeline.authorize = security.policy
            pipeline.status_extra = lambda: {
                "secure": True, "auth_denied": security.denied_counts()
            }
        else:
            pipeline.status_extra = lambda: {"secure": False, "auth_denied": {}}

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
        cfg, pipe = self.config, self.pipeline
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
                for sock in (sub, pub, router):
                    sock.setsockopt(zmq.LINGER, 1000)  # let the last status and alerts out
                sub.setsockopt(zmq.RCVHWM, 100_000)
                pub.setsockopt(zmq.SNDHWM, 100_000)
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
                def send(topic: bytes, payload: bytes) -> None:
                    pub.send_multipart([topic, payload])

                pipe.emit = send
                poller = zmq.Poller()
                poller.register(sub, zmq.POLLIN)
                poller.register(router, zmq.POLLIN)
                log.info(
                    "tracking: detections on %s, publishing on %s, snapshots on %s",
                    ", ".join(cfg.det_bind + cfg.det_connect),
                    cfg.publish,
                    cfg.snapshot or "-",
                )
                self.ready.set()
                next_tracks = next_status = time.monotonic()
                next_checkpoint = next_tracks + cfg.checkpoint_interval
                while not self.stop_event.is_set():
                    wait = pipe.next_release_in()
                    timeout = 100.0 if wait is None else min(100.0, wait * 1e3)
                    events = dict(poller.poll(int(timeout)))
                    if sub in events:
                        # bounded, so timers and the reorder release still run under load
                        self._drain(sub, limit=1000)
                    if router in events:
                        self._answer(router)
                    pipe.release()
                    now = time.monotonic()
                    if now >= next_tracks:
                        pipe.timer(now)
                        pub.send_multipart([b"track.update", pipe.track_message()])
                        next_tracks = now + cfg.track_interval
                    if now >= next_status:
                        pub.send_multipart([b"status", pack_map(pipe.status())])
                        next_status = now + cfg.status_interval
                    if cfg.checkpoint and now >= next_checkpoint:
                        self.checkpoint()
                        next_checkpoint = time.monotonic() + cfg.checkpoint_interval
                # Flush what we owe: what is queued on the socket, then the reorder buffer.
                self._drain(sub, deadline=time.monotonic() + 5.0)
                pipe.release(flush=True)
                pipe.timer(time.monotonic())
                pub.send_multipart([b"track.update", pipe.track_message()])
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
        finally:
            if pipe.alert_log is not None:
                pipe.alert_log.close()
            if self.security is not None:
                self.security.stop()
            if self._own_context:
                ctx.term()

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
            self.pipeline.receive([p.bytes for p in parts], user_id=user_id)
            n += 1
            if n % 256 == 0:
                self.pipeline.release()
        return n

    def _answer(self, router: zmq.Socket) -> None:
        """Answer open-alert requests; malformed requests get an error reply, never a crash."""
        while True:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, body = frames[0], frames[-1]
            try:
                request = unpack_map(body)
                if request.get("type") != "open_alerts":
                    raise WireError("request", f"unknown request type {request.get('type')!r}")
                pipe = self.pipeline
                reply = {
                    "type": "open_alerts",
                    "alerts": pipe.engine.open_alerts(),
                    "t": None if math.isinf(pipe.processed_until) else pipe.processed_until,
                    # what the snapshot already holds, so clients drop older alerts
                    "run": pipe.run_id,
                    "alert_seq": dict(pipe.alert_seq),
                }
            except WireError as exc:
                self.pipeline.rejected[f"request_{exc.reason}"] += 1
                reply = {"type": "error", "reason": exc.reason, "message": str(exc)}
            router.send_multipart([identity, b"", pack_map(reply)])


def restore_pipeline(pipeline: Pipeline, checkpoint: str | Path = "",
                     log_path: str | Path = "") -> dict[str, Any]:
    """Resume ``pipeline`` from a checkpoint and the alert log (see :mod:`fusion.checkpoint`).

    Call it after the pipeline's :class:`AlertLog` is open (opening it cuts a damaged
    tail off and reports it). Returns what was restored; also kept in
    ``pipeline.restored`` and so in ``status``.
    """
    result: dict[str, Any] = {}
    state: dict[str, Any] | None = None
    if checkpoint and Path(checkpoint).exists():
        try:
            state = load_checkpoint(checkpoint)
            result["checkpoint"] = str(checkpoint)
        except CheckpointError as exc:
            log.error("%s; starting from the alert log alone", exc)
            result["checkpoint_error"] = str(exc)
    events: list[dict[str, Any]] = []
    if log_path and Path(log_path).exists():
        events, report = read_alert_log(log_path)
        if not report.ok:
            log.error("alert log %s: %s (records after it are not used)", log_path, report.detail)
        result["log"] = report.detail
        recovery = getattr(pipeline.alert_log, "recovery", None)
        if recovery is not None and recovery.truncated:
            log.error("alert log %s had a damaged tail, cut off: %s", log_path, recovery.detail)
            result["log_truncated"] = recovery.detail
    if state is None and not events:
        pipeline.restored = result
        return result
    if state is None:
        state = pipeline.state_dict()  # the empty state, as of the log's beginning
        state["log_records"] = 0
    engine = pipeline.engine

    def hold_of(zone: str, kind: str) -> float | None:
        try:
            hold = getattr(engine.rules.for_zone(zone), kind).hold
        except AttributeError:
            return None
        return float(hold)

    engine_state, tracker_state, rec = reconcile(
        state.get("engine"), state["tracker"], events, int(state.get("log_records", 0)),
        hold_of, CLASSES, int(CONFIRMED),
    )
    state["engine"], state["tracker"] = engine_state, tracker_state
    for topic_ev in events[int(state.get("log_records", 0)):]:
        state["alert_seq"][f"alert.{topic_ev['zone']}.{topic_ev['kind']}"] = (
            state["alert_seq"].get(f"alert.{topic_ev['zone']}.{topic_ev['kind']}", 0) + 1
        )
        key = f"{topic_ev['kind']}.{topic_ev['event']}"
        state["alerts_by_kind"][key] = state["alerts_by_kind"].get(key, 0) + 1
    if rec.newest_t is not None:
        for name in ("processed_until", "newest_accepted"):
            if state[name] is None or state[name] < rec.newest_t:
                state[name] = rec.newest_t
    pipeline.load_state_dict(state)
    result.update(rec.as_dict())
    result["open_alerts"] = len(engine.open_alerts())
    if rec.log_short_by:
        log.error("alert log holds %d record(s) fewer than the checkpoint expects",
                  rec.log_short_by)
    log.info(
        "restored: %d open alert(s), %d log record(s) after the checkpoint "
        "(%d reopened, %d closed), %d track(s) rebuilt from alerts",
        result["open_alerts"], rec.later_events, len(rec.reopened), len(rec.closed),
        len(rec.tracks_restored),
    )
    pipeline.restored = result
    return result


__all__ = [
    "Pipeline",
    "ServiceConfig",
    "TrackerService",
    "percentiles",
    "restore_pipeline",
]
