"""The socket-free service core: validate, reorder, track, evaluate rules, count.

:class:`Pipeline` holds the per-message logic of the tracker service with no socket:
replay and tests drive it in-process, and :class:`fusion.service.server.TrackerService`
is the thin ZeroMQ loop around it.

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
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.alerting.engine import AlertEngine
from fusion.messages import (
    DetectionBatch,
    WireError,
    decode_batch,
    encode_batch,
    pack_map,
)
from fusion.service import reports
from fusion.service.admission import SensorAdmission
from fusion.service.alertlog import AlertLog
from fusion.service.budgets import DEFAULT_BUDGETS, Budgets
from fusion.service.latency import LatencyHistogram
from fusion.service.liveness import SensorLiveness
from fusion.service.settings import ServiceConfig
from fusion.service.stamps import EPOCH_FLOOR, Stamper
from fusion.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def _sensor_of_topic(topic: bytes) -> str:
    """The sensor id of a ``det.<kind>.<id>`` topic (checked against the payload later)."""
    parts = topic.split(b".", 2)
    if len(parts) != 3 or parts[0] != b"det" or not parts[2]:
        raise WireError("topic", f"topic {topic[:80]!r} is not det.<kind>.<sensor id>")
    try:
        return parts[2].decode("ascii")
    except UnicodeDecodeError:
        raise WireError("topic", f"topic {topic[:80]!r} is not ASCII") from None


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
    wall : callable
        UTC epoch clock (``time.time``): batch and alert *ages* in status are measured
        from the data's measurement time with it (live feeds; a replay at another speed
        shows its offset), and ``time_reference = "wall"`` judges times against it.

    Notes
    -----
    Every alert message carries ``run`` (random per service start) and ``seq`` (per
    topic, from 1), and ``status`` carries the newest ``alert_seq`` per topic: a
    subscriber sees a restart as a new ``run`` and a loss (a PUB high-water-mark drop
    or a reconnect) as a gap in ``seq``. The PUB socket cannot see its own drops, so
    those counts live in each subscriber (:class:`fusion.service.client.AlertClient`).
    """

    tracker: Tracker
    engine: AlertEngine
    config: ServiceConfig = field(default_factory=ServiceConfig)
    emit: Callable[[bytes, bytes], None] = lambda topic, payload: None
    alert_log: AlertLog | None = None
    clock: Callable[[], float] = time.monotonic
    authorize: Callable[[str, str | None], bool] | None = None
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.alerts_by_kind: Counter[str] = Counter()
        self.admission = SensorAdmission(
            max_future=self.config.max_future,
            max_lateness=self.config.max_lateness,
            time_reference=self.config.time_reference,
            registered=self.config.sensors,
            max_sensors=self.config.max_sensors,
            sensor_idle_expiry=self.config.sensor_idle_expiry,
            max_sensors_per_key=self.config.max_sensors_per_key,
            budgets=Budgets(
                {
                    kind: (
                        self.config.max_batch_detections.get(kind, per_batch),
                        self.config.max_detection_rate.get(kind, per_second),
                    )
                    for kind, (per_batch, per_second) in DEFAULT_BUDGETS.items()
                },
                max_variance=self.config.max_variance,
                probation_rate=self.config.probation_rate,
            ),
            clock=self.clock,
            wall=self.wall,
        )
        self.latencies: deque[float] = deque(maxlen=2048)
        # Configured sensors and ids past probation only: what an id flood's one-batch
        # newcomers wait for does not hide what the sensors everyone relies on wait for.
        self.established_latencies: deque[float] = deque(maxlen=2048)
        # Measured from the data's own time by this machine's UTC clock: unlike the
        # arrival-based latency, it includes time spent queued in ZeroMQ and on the way.
        # Only for times in UTC: a simulation's scenario seconds have no such age.
        self.batch_ages: deque[float] = deque(maxlen=2048)
        self.alert_ages: deque[float] = deque(maxlen=2048)
        # Where the time goes, summed over the run (wall seconds; reorder_wait on clock).
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.newest_accepted = -math.inf
        self.processed_until = -math.inf
        self._rules_evaluated_at = -math.inf
        # Track ids deleted since the last rule evaluation (so lost_inside says "deleted").
        self._pending_deleted: list[np.ndarray] = []
        self._heap: list[tuple[float, int, float, DetectionBatch]] = []
        self._arrivals = 0
        self.started = self.clock()
        self.run_id = os.urandom(6).hex()
        self.alert_seq: Counter[str] = Counter()
        self.checkpoints = {"written": 0, "failed": 0, "bytes": 0}
        self.restored: dict[str, Any] = {}
        self.restarts = 0
        self.downtime_at_most: float | None = None
        self.status_extra: Callable[[], dict[str, Any]] = dict
        self.latency_hist = LatencyHistogram()
        # Off until enable_ops(): offline replays stay byte-identical run to run.
        self.stamper: Stamper | None = None
        self.liveness: SensorLiveness | None = None

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
        # Who is speaking is in the topic: settle that before paying for the payload.
        sender = _sensor_of_topic(bytes(topic))
        self._authorize(sender, user_id)
        self.admission.admit_sender(sender, user_id)
        batch = decode_batch(payload)
        if bytes(topic) != batch.topic:
            raise WireError("topic", f"topic {bytes(topic)[:80]!r} does not match {batch.topic!r}")
        self.admission.admit(batch, user_id, sender_checked=True)
        return self.admission.scoped(batch)

    def _authorize(self, sensor: str, user_id: str | None) -> None:
        if self.authorize is not None and not self.authorize(sensor, user_id):
            # Before any per-sensor bookkeeping: a spoofer must not move the real
            # sensor's sequence number or time reference.
            raise WireError(
                "spoofed_sensor", f"key {user_id} is not registered for sensor {sensor!r}"
            )

    @property
    def last_seq(self) -> dict[str, int]:
        """Newest sequence number per sensor id in the table."""
        return self.admission.last_seq

    @property
    def gaps(self) -> Counter[str]:
        """Messages missing per sensor (sequence gaps)."""
        return self.admission.gaps

    # -- release and processing -----------------------------------------------------

    def next_release_in(self) -> float | None:
        """Wall-clock seconds until the oldest held batch is due; None when empty."""
        if not self._heap:
            return None
        oldest_recv = min(entry[2] for entry in self._heap[:8])
        return max(0.0, oldest_recv + self.config.reorder_window - self.clock())

    def release(self, flush: bool = False, until: float | None = None) -> int:
        """Process every batch that is due (all of them with ``flush``); return how many.

        Parameters
        ----------
        flush : bool
            Release every held batch, due or not.
        until : float, optional
            A ``time.perf_counter()`` deadline: stop there and leave the rest held, so
            the caller's loop (signals, snapshots, status) keeps its pace under load.
        """
        done = 0
        now = self.clock()
        window = self.config.reorder_window
        while self._heap:
            t, _, t_recv, batch = self._heap[0]
            due = flush or t <= self.newest_accepted - window or now - t_recv >= window
            if not due or (until is not None and done and time.perf_counter() > until):
                break
            heapq.heappop(self._heap)
            self.stage_seconds["reorder_wait"] += now - t_recv
            self._process(batch, t_recv)
            done += 1
        return done

    @property
    def held(self) -> int:
        """Batches received and not yet processed (the reorder buffer's depth)."""
        return len(self._heap)

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
            latency = self.clock() - t_recv
            self.latencies.append(latency)
            if self.admission.established(batch.sensor_id):
                self.established_latencies.append(latency)
            self.latency_hist.observe(latency)
            if self.liveness is not None:
                self._publish_system(self.liveness.observe(
                    batch.sensor_id, batch.sensor_kind, batch.t, batch.coverage,
                    result.updated, now=t_recv,
                ))
            if batch.t >= EPOCH_FLOOR:  # scenario seconds have no age on the UTC clock
                self.batch_ages.append(self.wall() - batch.t)
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
            mu=snap.mu,  # a manoeuvring track's course is trusted less far ahead
        )
        self._rules_evaluated_at = now
        self.stage_seconds["rules"] += time.perf_counter() - started
        self._publish_alerts(events)

    def _publish_alerts(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        started = time.perf_counter()
        if self.stamper is not None:
            self.stamper.stamp_alerts(events)  # UTC time and lon/lat, logged and sent
        if self.alert_log is not None:
            self.alert_log.append_many(events)  # durable before anyone hears of it
        self._emit(events)
        published = self.wall()
        self.alert_ages.extend(published - float(e["t"]) for e in events
                               if "t" in e and float(e["t"]) >= EPOCH_FLOOR)
        self.stage_seconds["log_and_publish"] += time.perf_counter() - started

    def enable_ops(self, liveness: SensorLiveness | None = None) -> None:
        """Turn on what a live operations centre needs (issue 15).

        UTC time and lon/lat on alerts and track pictures (:mod:`.stamps`), and
        sensor liveness (:mod:`.liveness`): ``sensor_silent``/``sensor_back`` alerts
        and a ``degraded`` column. The live service calls it; offline replays do
        not, so their results stay the same bytes every run.
        """
        frame = self.engine.frame
        self.stamper = Stamper(frame)
        self.liveness = liveness or SensorLiveness(
            clock=self.clock, to_lonlat=None if frame is None else frame.to_lonlat,
            known=self.admission.registered,
        )
        self.admission.on_forget = self.liveness.forget  # evicted ids leave liveness too

    def _emit(self, events: list[dict[str, Any]]) -> None:
        """Count and publish events on ``alert.<zone>.<kind>``, numbered per topic."""
        for event in events:
            self.alerts_by_kind[f"{event['kind']}.{event['event']}"] += 1
            name = f"alert.{event['zone']}.{event['kind']}"
            self.alert_seq[name] += 1
            message = {"type": "alert", **event, "run": self.run_id, "seq": self.alert_seq[name]}
            self.emit(name.encode("ascii"), pack_map(message))

    def _publish_system(self, events: list[dict[str, Any]]) -> None:
        """Publish ``sensor_silent``/``sensor_back`` (alert.sensors.<kind>), not logged.

        They describe arrivals at this service, not a track in a zone: the alert log
        and its recovery hold zone episodes only, and a restart learns silence anew.
        """
        if self.stamper is not None:
            self.stamper.stamp_alerts(events)
        self._emit(events)

    # -- outgoing pictures ----------------------------------------------------------

    def track_message(self) -> bytes:
        """The confirmed track picture, columnar like detection batches."""
        return reports.track_message(self)

    def heartbeat(self) -> dict[str, Any]:
        """A small 'alive' message, sent every track interval (see :mod:`.reports`)."""
        return reports.heartbeat(self)

    def status(self) -> dict[str, Any]:
        """Counters for operators: what came in, what was refused, how fast."""
        return reports.status(self)

    # -- checkpoints ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: tracker, alert engine, counters, held batches.

        ``log_records`` is how many records the alert log held at this instant; see
        :mod:`fusion.service.recovery` for how a restart reconciles the two.
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
            "admission": self.admission.state_dict(),
            "alerts_by_kind": dict(self.alerts_by_kind),
            "alert_seq": dict(self.alert_seq),
            "last_seq": dict(self.last_seq),
            "newest_accepted": finite(self.newest_accepted),
            "processed_until": finite(self.processed_until),
            "rules_evaluated_at": finite(self._rules_evaluated_at),
            "restarts": self.restarts,
            "saved_at": self.wall(),
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
        self.alerts_by_kind = Counter(state["alerts_by_kind"])
        self.alert_seq = Counter(state["alert_seq"])
        # Checkpoints from before per-sensor admission hold only sequence numbers and gaps.
        self.admission.load_state_dict(
            state.get("admission") or {"last_seq": state["last_seq"], "gaps": state["gaps"]}
        )
        self.newest_accepted = back(state["newest_accepted"])
        self.processed_until = back(state["processed_until"])
        self._rules_evaluated_at = back(state["rules_evaluated_at"])
        # A restart is reported as one, with the longest it can have lasted (from the
        # checkpoint's save to now), instead of as sequence gaps and rolled-back counters.
        self.restarts = int(state.get("restarts", 0)) + 1
        if state.get("saved_at") is not None:
            self.downtime_at_most = max(self.wall() - float(state["saved_at"]), 0.0)
        now = self.clock()
        self._heap = []
        for payload in state.get("held", []):
            batch = decode_batch(payload)
            heapq.heappush(self._heap, (batch.t, self._arrivals, now, batch))
            self._arrivals += 1

    def timer(self, t_wall: float) -> None:
        """Let dwell times and holds run out while no batch arrives."""
        if self.liveness is not None:
            self._publish_system(self.liveness.check())
            self.liveness.prune_tracks(self.tracker.confirmed().ids)
        if math.isfinite(self.tracker.latest_time):
            try:
                self._evaluate_rules()
            except Exception:
                self.rejected["internal"] += 1
                log.error("internal error in the alert timer:\n%s", traceback.format_exc())
