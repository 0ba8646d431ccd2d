"""Who may speak, and when: per-sensor admission of detection batches.

Every batch that decoded cleanly passes here before it is queued. The rules are
written so that nothing one source sends changes how another source is treated:

Time
    A batch is judged against a *reference time*. With ``time_reference = "wall"`` it
    is the service's own clock (UTC epoch seconds): the right choice for a live feed.
    With ``"feed"`` (replays at any speed, offline runs, simulations at ``--speed``)
    it is what the sensors agree on:

    - A *voter* is a configured sensor id, or the CURVE key that created an id (one
      key registered for ``ugs-*`` is one voter however many ids it invents), or in
      insecure mode an id. A sensor heard only once (a probe, one satellite pass)
      shows no running clock and does not vote.
    - Each voter votes its newest accepted time, carried forward at real-time rate
      over the wall-clock time since it was last heard (silent is not slow).
    - The reference is the second largest vote: the newest time that two voters
      vouch for. No single voter can move it ahead, and sensors that report rarely
      cannot hold it back. One voter alone is its own reference; with none, there is
      no reference yet.

    A batch more than ``max_future`` after the reference is ``future``, counted as a
    clock jump of its sensor, which stays quarantined until its times agree with the
    others again. A jump is let through once its sensor has sent
    ``JUMP_CONFIRMATIONS`` consistent batches and more voters are for it (its own,
    and others running ahead to the same time) than against it (active voters with
    older votes): a liar is outvoted by the honest sensors, while a sensor talking
    alone, or every sensor after a skip in a fast replay, goes on. A batch more than
    ``max_lateness`` before the reference (when two voters vouch for it), or before
    its own sensor's newest accepted time, is ``too_old``. Without CURVE
    and without a ``sensors`` allow-list anyone may invent voters; such a deployment
    should use ``time_reference = "wall"``.
Sequence
    Sequence numbers are per sensor. A step forward of more than one counts the
    missing messages as a gap (a jump beyond ``max_gap`` counts as a re-sync instead,
    so one forged number cannot inflate the gap count). A number at or below the last
    one is a ``duplicate`` when its time is not newer than the sensor's newest
    accepted time (a replayed frame) and a counted re-sync otherwise (the sensor
    restarted its counter, or someone pushed the counter to 2**63-1): a jump never
    locks a sensor out.
Sensor table
    Configured sensors always have their place. Other ids (insecure mode, or keys
    registered for patterns such as ``ugs-*``) take bounded, evictable slots: when
    ``max_sensors`` are in use, the least recently heard id is evicted if it has been
    silent for ``sensor_idle_expiry`` wall-clock seconds, otherwise the new id is
    refused (``too_many_sensors``). An id flood therefore cannot refuse a sensor
    that is configured or was heard recently. With CURVE, one key may create at most
    ``max_sensors_per_key`` ids (``too_many_sensors_for_key``).
Budgets
    Detections per batch and per second, measurement covariances and the allowance
    of ids on probation are bounded by :class:`fusion.service.budgets.Budgets`.

Work per batch is O(1) amortised, plus a vote count over the active sensors that
is recomputed every batch while few sensors are heard, and otherwise at most every
``_CONSENSUS_EVERY`` batches or ``_CONSENSUS_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import numpy as np

from fusion.messages import DetectionBatch, WireError
from fusion.service.budgets import Budgets

log = logging.getLogger(__name__)

TIME_REFERENCES = ("feed", "wall")
# A sensor's jump ahead of the consensus is believed only after this many of its batches
# in a row agree with one another: one forged frame never moves anything.
JUMP_CONFIRMATIONS = 2
# The feed consensus is refreshed this often: often enough to follow a feed at any
# speed, rarely enough that a median over thousands of ids stays off the hot path.
_CONSENSUS_EVERY = 32
_CONSENSUS_SECONDS = 0.05
_MAX_COUNTED = 256  # sensors looked at when votes on a jump are counted
# An unconfigured id is a newcomer for this many accepted batches: what it claims to
# see reaches this far (m), and its latency is kept apart in status.
ESTABLISHED_BATCHES = 10
NEWCOMER_REACH_M = 500.0

# Entries of a per-sensor map in status at most: status must stay one small message
# that every subscriber can decode (msgpack maps are capped at 256 entries on decode),
# however many ids a flood invents.
STATUS_MAP_LIMIT = 200


def largest(counts: Mapping[str, int], limit: int = STATUS_MAP_LIMIT) -> dict[str, int]:
    """The ``limit`` largest entries of ``counts``; the rest summed under ``"(others)"``."""
    if len(counts) <= limit:
        return dict(counts)
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    out = dict(ranked[: limit - 1])
    out["(others)"] = sum(v for _, v in ranked[limit - 1 :])
    return out


class SensorAdmission:
    """Per-sensor time, sequence and table checks; see the module docstring.

    Parameters
    ----------
    max_future, max_lateness : float
        Seconds a batch may lie after / before the reference time.
    time_reference : {"feed", "wall"}
    registered : iterable of str
        Configured sensor ids: always admitted to the table (and, when non-empty, the
        only ids admitted at all).
    max_sensors : int
        Slots for ids that are not configured.
    sensor_idle_expiry : float
        Wall-clock seconds of silence after which an unconfigured id may be evicted.
    max_sensors_per_key : int
        Ids one authenticated key may create.
    active_window : float
        Wall-clock seconds a sensor counts towards the feed consensus after it was heard.
    max_gap : int
        Largest forward jump counted as lost messages; larger jumps are re-syncs.
    budgets : Budgets, optional
        The work bounds (default: :class:`~fusion.service.budgets.Budgets` defaults).
    clock : callable
        Monotonic wall clock (seconds), for idleness; injectable for tests and replays.
    wall : callable
        UTC epoch clock for ``time_reference = "wall"``.
    """

    def __init__(
        self,
        *,
        max_future: float,
        max_lateness: float,
        time_reference: str = "feed",
        registered: Iterable[str] = (),
        max_sensors: int = 10_000,
        sensor_idle_expiry: float = 60.0,
        max_sensors_per_key: int = 256,
        active_window: float = 30.0,
        max_gap: int = 1_000_000,
        budgets: Budgets | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if time_reference not in TIME_REFERENCES:
            raise ValueError(
                f"time_reference must be one of {TIME_REFERENCES}, got {time_reference!r}"
            )
        self.max_future = max_future
        self.max_lateness = max_lateness
        self.time_reference = time_reference
        self.registered = frozenset(registered)
        self.max_sensors = max_sensors
        self.sensor_idle_expiry = sensor_idle_expiry
        self.max_sensors_per_key = max_sensors_per_key
        self.active_window = active_window
        self.max_gap = max_gap
        self.budgets = budgets or Budgets()
        # Told of every evicted id, so per-sensor state elsewhere (liveness) stays bounded.
        self.on_forget: Callable[[str], None] | None = None
        self.missed_while_down: Counter[str] = Counter()
        self._resumed: set[str] = set()
        self.clock = clock
        self.wall = wall
        self.last_seq: dict[str, int] = {}
        self.latest_t: dict[str, float] = {}
        # Least recently heard first; values are the clock time each id was last heard.
        self.heard: OrderedDict[str, float] = OrderedDict()
        self.created_by: dict[str, str] = {}
        self.voter: dict[str, str] = {}
        # Accepted batches per sensor: one alone shows no running clock.
        self.accepted: dict[str, int] = {}
        # Per sensor ahead of the reference: (consistent batches in a row, newest time).
        self._jump_runs: dict[str, tuple[int, float]] = {}
        self.ids_per_key: Counter[str] = Counter()
        self.gaps: Counter[str] = Counter()
        self.resyncs: Counter[str] = Counter()
        self.clock_jumps: Counter[str] = Counter()
        self.evicted = 0
        self._cached: float | None = None
        self._voters = 0
        self._cached_at = -math.inf
        self._since_consensus = _CONSENSUS_EVERY

    # -- the check ------------------------------------------------------------------

    def admit_sender(self, sensor: str, user_id: str | None = None) -> None:
        """The checks that need only the sensor id (from the topic, before decoding).

        Configured ids, room in the table, the probation allowance: a flood of invented
        ids is refused here without the cost of decoding its payloads.
        """
        if self.registered and sensor not in self.registered:
            raise WireError("unknown_sensor", f"sensor {sensor!r} is not configured")
        now = self.clock()
        if sensor not in self.heard:
            self._make_room(sensor, user_id, now)
        if sensor not in self.registered:
            self.budgets.draw_probation(sensor, self.accepted.get(sensor, 0),
                                        self.reference_time())

    def admit(
        self, batch: DetectionBatch, user_id: str | None = None, sender_checked: bool = False
    ) -> None:
        """Accept ``batch`` into the sensor's state, or raise :class:`WireError`.

        A refused batch changes no sequence number, time or table entry; a refused
        ``future`` batch only advances its sensor's jump run (bounded like the table).
        ``sender_checked`` says :meth:`admit_sender` already passed for this batch.
        """
        sensor = batch.sensor_id
        if not sender_checked:
            self.admit_sender(sensor, user_id)
        self.budgets.check_batch(batch)
        now = self.clock()
        known = sensor in self.heard
        step = self._sequence_step(batch)
        jumped = self._check_time(batch, known)
        try:
            self.budgets.spend(batch)
        except WireError:
            if known:  # the drop is on purpose: its sequence number must not become a gap
                self.last_seq[sensor] = max(batch.seq, self.last_seq[sensor])
            raise
        if step is not None:
            self._count_step(sensor, step, batch.seq)
        if not known:
            self.voter[sensor] = sensor if sensor in self.registered or user_id is None else user_id
            if user_id is not None:
                self.created_by[sensor] = user_id
                self.ids_per_key[user_id] += 1
        self.heard[sensor] = now
        self.heard.move_to_end(sensor)
        self.accepted[sensor] = self.accepted.get(sensor, 0) + 1
        self.last_seq[sensor] = batch.seq
        self.latest_t[sensor] = max(batch.t, self.latest_t.get(sensor, -math.inf))
        if not jumped:
            self._jump_runs.pop(sensor, None)
        self._since_consensus += 1

    def scoped(self, batch: DetectionBatch) -> DetectionBatch:
        """The batch, with a newcomer's claim to have seen everything narrowed.

        No coverage polygon charges a miss to every track; from an unconfigured id with
        at most :data:`ESTABLISHED_BATCHES` batches (an id flood sends one each) it
        covers only a box :data:`NEWCOMER_REACH_M` around its detections (or nothing).
        """
        if batch.coverage is not None or self.established(batch.sensor_id):
            return batch
        box = np.zeros((3, 2))  # zero area: contains no track
        if len(batch):
            lo, hi = batch.z.min(axis=0) - NEWCOMER_REACH_M, batch.z.max(axis=0) + NEWCOMER_REACH_M
            box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        return dataclasses.replace(batch, coverage=box)

    def established(self, sensor: str) -> bool:
        """Configured, or past its first :data:`ESTABLISHED_BATCHES` accepted batches."""
        return sensor in self.registered or self.accepted.get(sensor, 0) > ESTABLISHED_BATCHES

    def _make_room(self, sensor: str, user_id: str | None, now: float) -> None:
        if sensor in self.registered:
            return
        if user_id is not None and self.ids_per_key[user_id] >= self.max_sensors_per_key:
            raise WireError(
                "too_many_sensors_for_key",
                f"key {user_id} already speaks for {self.ids_per_key[user_id]} sensor ids; "
                f"{sensor!r} refused",
            )
        if self._unregistered_count() < self.max_sensors:
            return
        oldest, heard_at = self._oldest_unregistered()
        if oldest is None or now - heard_at < self.sensor_idle_expiry:
            raise WireError(
                "too_many_sensors",
                f"{self.max_sensors} sensor ids heard within {self.sensor_idle_expiry:g} s; "
                f"{sensor!r} refused",
            )
        self.forget(oldest)

    def _unregistered_count(self) -> int:
        return len(self.heard) - sum(1 for s in self.registered if s in self.heard)

    def _oldest_unregistered(self) -> tuple[str | None, float]:
        # Configured ids are few (the configuration lists them), so skipping them is cheap.
        for sensor, heard_at in self.heard.items():
            if sensor not in self.registered:
                return sensor, heard_at
        return None, math.inf

    def forget(self, sensor: str) -> None:
        """Drop an idle id's state (its gap count folds into the evicted total)."""
        self.heard.pop(sensor, None)
        self.last_seq.pop(sensor, None)
        self.latest_t.pop(sensor, None)
        self.voter.pop(sensor, None)
        self.budgets.forget(sensor)
        self.missed_while_down.pop(sensor, None)
        self._resumed.discard(sensor)
        self.accepted.pop(sensor, None)
        self._jump_runs.pop(sensor, None)
        self.gaps.pop(sensor, None)
        self.resyncs.pop(sensor, None)
        self.clock_jumps.pop(sensor, None)
        key = self.created_by.pop(sensor, None)
        if key is not None:
            self.ids_per_key[key] -= 1
            if self.ids_per_key[key] <= 0:
                del self.ids_per_key[key]
        self.evicted += 1
        if self.on_forget is not None:
            self.on_forget(sensor)

    def _check_time(self, batch: DetectionBatch, known: bool) -> bool:
        """Raise if ``batch`` is too far from the reference; True if let through as a jump."""
        reference = self.reference_time()
        jumped = False
        if reference is not None and batch.t > reference + self.max_future:
            jumped = self._jump_confirmed(batch.sensor_id, batch.t, known)
            if not jumped:
                if known:  # per-sensor counts only for ids in the table (bounded)
                    self.clock_jumps[batch.sensor_id] += 1
                raise WireError(
                    "future",
                    f"sensor {batch.sensor_id}: time {batch.t:.3f} is more than "
                    f"{self.max_future:g} s after the {self.time_reference} reference "
                    f"{reference:.3f}",
                )
        own = self.latest_t.get(batch.sensor_id)
        # Only a reference two voters vouch for (or the wall clock) may call a sensor
        # late: a lone voter with a wild clock must not shut every newcomer out.
        vouched = reference is not None and not jumped and (
            self.time_reference == "wall" or self._voters >= 2)
        floor = max(reference if vouched and reference is not None else -math.inf,
                    -math.inf if own is None else own)
        if batch.t < floor - self.max_lateness:
            raise WireError(
                "too_old",
                f"sensor {batch.sensor_id}: time {batch.t:.3f} is more than "
                f"{self.max_lateness:g} s before {floor:.3f}",
            )
        return jumped

    def _jump_confirmed(self, sensor: str, t: float, known: bool) -> bool:
        """Has ``sensor`` run ahead consistently, with more voters for it than against?

        For it: its own voter and every other sensor running ahead to about the same
        time. Against: the other active voters whose votes are more than
        ``max_future`` older. A liar among talking honest sensors is outvoted; a
        sensor talking alone, or sensors jumping together, go on.
        """
        runs, newest = self._jump_runs.get(sensor, (0, -math.inf))
        runs = runs + 1 if newest < t <= newest + self.max_future else 1
        if not known and sensor not in self._jump_runs and len(self._jump_runs) >= self.max_sensors:
            return False  # runs of unseen ids are bounded like the table
        self._jump_runs[sensor] = (runs, t)
        if runs < JUMP_CONFIRMATIONS or self.time_reference == "wall":
            return False  # the service's own clock follows nobody
        own = self.voter.get(sensor, sensor)
        agree: set[str] = {own}
        against: set[str] = set()
        for other, (_, claim) in islice(self._jump_runs.items(), _MAX_COUNTED):
            if abs(claim - t) <= self.max_future:
                agree.add(self.voter.get(other, other))
        now = self.clock()
        for other, heard_at in islice(reversed(self.heard.items()), _MAX_COUNTED):
            if now - heard_at > self.active_window:
                break
            vote = self.latest_t[other] + max(now - heard_at, 0.0)
            (agree if vote >= t - self.max_future else against).add(self.voter.get(other, other))
        return len(agree) > len(against - agree)

    def _sequence_step(self, batch: DetectionBatch) -> int | None:
        """The forward step of the sequence number (None: first batch or a re-sync)."""
        last = self.last_seq.get(batch.sensor_id)
        if last is None:
            return None
        step = batch.seq - last
        if step <= 0 and batch.t <= self.latest_t.get(batch.sensor_id, -math.inf):
            raise WireError(
                "duplicate", f"sensor {batch.sensor_id} sent seq {batch.seq} after {last}"
            )
        if step <= 0 or step - 1 > self.max_gap:
            return -1
        return step

    def _count_step(self, sensor: str, step: int, seq: int) -> None:
        if sensor in self._resumed:
            # The first batch after a restart: what the sensor sent while the service was
            # down is downtime, not transport loss.
            self._resumed.discard(sensor)
            if step > 1:
                self.missed_while_down[sensor] += step - 1
            return
        if step < 0:
            self.resyncs[sensor] += 1
            if self.resyncs[sensor] <= 5:
                log.warning("sensor %s: sequence re-synchronised at %d", sensor, seq)
        elif step > 1:
            self.gaps[sensor] += step - 1
            if self.gaps[sensor] == step - 1:
                # The first gap of a sensor is news; the rest is in status (a flood of
                # forged jumps must not become a flood of log lines).
                log.warning("sensor %s: %d message(s) missing before seq %d", sensor, step - 1, seq)

    # -- the reference time ---------------------------------------------------------

    def reference_time(self) -> float | None:
        """The time batches are judged against; None before anyone is heard (feed)."""
        if self.time_reference == "wall":
            return self.wall()
        now = self.clock()
        if (
            self._cached is None
            or len(self.heard) <= _CONSENSUS_EVERY  # few sensors: recounting costs nothing
            or self._since_consensus >= _CONSENSUS_EVERY
            or now - self._cached_at >= _CONSENSUS_SECONDS
        ):
            self._cached = self._consensus(now)
            self._cached_at = now
            self._since_consensus = 0
        return self._cached

    def _consensus(self, now: float) -> float | None:
        """Second largest vote of the voters heard within ``active_window`` (see module)."""
        members: dict[str, list[float]] = {}
        once: dict[str, list[float]] = {}
        for sensor, heard_at in reversed(self.heard.items()):
            if now - heard_at > self.active_window:
                break  # least recently heard last: the rest are older still
            vote = self.latest_t[sensor] + max(now - heard_at, 0.0)
            voters = members if self.accepted.get(sensor, 0) >= 2 else once
            voters.setdefault(self.voter.get(sensor, sensor), []).append(vote)
        if not members and len(once) >= 2:
            # At start-up nobody has a running clock yet; two first words still agree
            # or disagree, and one alone (a probe) is no reference for the next.
            members = once
        self._voters = len(members)
        if not members:
            return None
        # A voter speaking for several ids votes the median of their times.
        votes = np.array([v[0] if len(v) == 1 else float(np.median(v)) for v in members.values()])
        if votes.size == 1:
            return float(votes[0])
        return float(np.partition(votes, votes.size - 2)[votes.size - 2])

    # -- status and checkpoints -----------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counters for operators (per-sensor maps hold only ids still in the table, and
        at most :data:`STATUS_MAP_LIMIT` of them, the largest: see :func:`largest`)."""
        reference = self.reference_time()
        return {
            "sensors_seen": len(self.heard),
            "sensors_evicted": self.evicted,
            "gaps": largest(self.gaps),
            "seq_resyncs": largest(self.resyncs),
            "clock_jumps": largest(self.clock_jumps),
            "budget_drops": largest(self.budgets.drops),
            "missed_while_down": largest(self.missed_while_down),
            "time_reference": self.time_reference,
            "reference_t": reference,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_seq": dict(self.last_seq),
            "latest_t": dict(self.latest_t),
            "gaps": dict(self.gaps),
            "resyncs": dict(self.resyncs),
            "clock_jumps": dict(self.clock_jumps),
            "missed_while_down": dict(self.missed_while_down),
            "evicted": self.evicted,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume. Restored ids keep their sequence numbers and times, but their votes are
        stale (the feed went on while the service was down): they count as heard just
        outside ``active_window``, so the first batches after the restart set the
        reference (an idle one becomes evictable ``active_window`` seconds sooner)."""
        heard_at = self.clock() - self.active_window - 1e-3
        self.last_seq = {k: int(v) for k, v in state.get("last_seq", {}).items()}
        self.latest_t = {k: float(v) for k, v in state.get("latest_t", {}).items()}
        self.heard = OrderedDict((k, heard_at) for k in self.last_seq)
        self.accepted = {k: 2 for k in self.last_seq}  # they had a running clock
        self.gaps = Counter(state.get("gaps", {}))
        self.resyncs = Counter(state.get("resyncs", {}))
        self.clock_jumps = Counter(state.get("clock_jumps", {}))
        self.missed_while_down = Counter(state.get("missed_while_down", {}))
        self._resumed = set(self.last_seq)
        self.evicted = int(state.get("evicted", 0))
        self.created_by.clear()
        self.ids_per_key.clear()
        self._since_consensus = _CONSENSUS_EVERY
