"""Offline replay: ``bufferzone replay FILE --offline --out RESULT``.

The tracker and the alert rules run in this process on a recording, as fast as the
CPU allows, through the same :class:`fusion.service.pipeline.Pipeline` the live service uses.
The pipeline's clock is the recording's arrival time of the message being handled,
so the reorder window releases batches exactly as it did (or would have) live, and
two runs on one recording write the same bytes.

RESULT format
-------------
A result is a recording (:mod:`replay.recording`, same magic, version and framing),
so the same reader, truncation report and tools apply. Its header metadata::

    {"kind": "result", "result_version": 1, "writer": "bufferzone replay --offline",
     "tracker": "bufferzone" | "baseline", "tracker_config": {...}, "step": float,
     "service": {"reorder_window", "alert_interval", "timer_interval"},
     "rules": "default" | path, "source": file name of the recording,
     "scenario": the recording's scenario entry (zones, origin, incursions) or {}}

and its frames, each stamped (``t_recv``) with a *measurement* time, seconds:

``track.update``
    The confirmed-track picture at each step ``k * step`` (default 1 s) that the
    tracker's measurement time passed: every confirmed track predicted to that time.
    Payload (msgpack map, :func:`encode_tracks`): ``type="tracks"``, ``t``, ``n``,
    ``ids`` (<i8, n), ``x`` (<f8, n x 4: east, north, v_east, v_north), ``P_pos``
    (<f8, n x 3: xx, xy, yy), ``cls`` (u1, n), ``conf`` (<f4, n). The picture at ``t``
    holds every batch with measurement time <= ``t`` that had arrived by then.
``alert.<zone>.<kind>``
    Each alert event exactly as the service publishes it (open/update/close; see
    :mod:`fusion.alerting.engine`), with ``run`` set to ``"offline"`` so runs compare equal.
``truth.<scenario>``
    The recording's truth messages, copied unchanged.
``status``
    One at the end: the pipeline's counters (received, rejected by reason, late
    batches, alerts by kind, ...), plus ``source_report``: how reading the recording
    ended (complete, or truncated/corrupt and where).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import RuleSet, load_rules
from fusion.alerting.zones import ZoneSet
from fusion.geo import LocalFrame
from fusion.messages import decode_batch, pack_map, unpack_map
from fusion.service import Pipeline, ServiceConfig
from fusion.tracking.tracker import Tracker, TrackerConfig
from replay.progress import progress
from replay.recording import RecordingReader, RecordingReport, RecordingWriter
from replay.scenario_meta import zones_from_metadata
from sensors.truth import decode_truth

log = logging.getLogger(__name__)

RESULT_VERSION = 1
# Pipeline status keys copied into the result's final status frame.
_DETERMINISTIC_STATUS = (
    "type",
    "received",
    "batches",
    "detections",
    "rejected",
    "rejected_total",
    "gaps",
    "late_batches",
    "oosm_updates",
    "held",
    "live_tracks",
    "confirmed_tracks",
    "tracks_confirmed_total",
    "open_alerts",
    "alerts",
    "t",
    "alert_seq",
    "sensors_seen",
)
TRACKERS = ("bufferzone", "baseline")

# Bytes of framing around a recorded message (length, time, topic length, CRC), for
# the progress bar's byte count.
_FRAME_BYTES = 4 + 8 + 2 + 4


def encode_tracks(
    t: float,
    ids: np.ndarray,
    x: np.ndarray,
    P: np.ndarray,
    cls: np.ndarray | None = None,
    conf: np.ndarray | None = None,
) -> bytes:
    """A confirmed-track picture as a ``track.update`` payload.

    Parameters
    ----------
    t : float
        Time every state refers to, seconds.
    ids : ndarray, shape (N,), int
    x : ndarray, shape (N, 4), float
        east, north, v_east, v_north.
    P : ndarray, shape (N, 4, 4), float
    cls : ndarray, shape (N,), uint8, optional
        Class index (0, "unknown", when absent).
    conf : ndarray, shape (N,), float, optional
    """
    n = int(ids.shape[0])
    P = np.asarray(P, dtype=np.float64).reshape(n, 4, 4)
    P_pos = np.stack([P[:, 0, 0], P[:, 0, 1], P[:, 1, 1]], axis=1) if n else np.empty((0, 3))
    return pack_map(
        {
            "type": "tracks",
            "t": float(t),
            "n": n,
            "ids": np.ascontiguousarray(ids, dtype="<i8").tobytes(),
            "x": np.ascontiguousarray(x, dtype="<f8").reshape(n, 4).tobytes(),
            "P_pos": np.ascontiguousarray(P_pos, dtype="<f8").tobytes(),
            "cls": np.zeros(n, "u1").tobytes()
            if cls is None
            else np.ascontiguousarray(cls, dtype="u1").tobytes(),
            "conf": np.zeros(n, "<f4").tobytes()
            if conf is None
            else np.ascontiguousarray(conf, dtype="<f4").tobytes(),
        }
    )


@dataclass(frozen=True)
class TrackPicture:
    """One decoded ``track.update``.

    Attributes
    ----------
    t : float
    ids : ndarray, shape (N,), int64
    x : ndarray, shape (N, 4), float64
    P_pos : ndarray, shape (N, 3), float64
        Position covariance packed xx, xy, yy.
    cls : ndarray, shape (N,), uint8
    conf : ndarray, shape (N,), float32
    """

    t: float
    ids: np.ndarray
    x: np.ndarray
    P_pos: np.ndarray
    cls: np.ndarray
    conf: np.ndarray


def decode_tracks(payload: bytes) -> TrackPicture:
    """Inverse of :func:`encode_tracks` (also reads the live service's ``track.update``).

    Raises
    ------
    fusion.messages.WireError
        When the payload is not a msgpack map of the current schema version.
    ValueError
        When the arrays do not match ``n``.
    """
    obj = unpack_map(payload)
    n = int(obj["n"])
    t = obj.get("t")
    return TrackPicture(
        t=math.nan if t is None else float(t),
        ids=np.frombuffer(obj["ids"], "<i8").reshape(n),
        x=np.frombuffer(obj["x"], "<f8").reshape(n, 4),
        P_pos=np.frombuffer(obj["P_pos"], "<f8").reshape(n, 3),
        cls=np.frombuffer(obj["cls"], "u1").reshape(n),
        conf=np.frombuffer(obj["conf"], "<f4").reshape(n),
    )


class _Stepper:
    """Takes a picture of the confirmed tracks at each step time the tracker passes.

    A step ``b = k * step`` is due once a batch with measurement time after ``b`` is
    about to be processed (so the picture holds everything at or before ``b`` that
    had arrived), or at the end for steps up to the last processed time.
    """

    def __init__(self, step: float, picture: Callable[[float], None]):
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step}")
        self.step = float(step)
        self.picture = picture
        self.next_k: int | None = None
        self.count = 0

    def before(self, t: float) -> None:
        """Call before processing a batch at measurement time ``t``."""
        if self.next_k is None:
            # Integer step numbers, so step times do not drift by accumulated rounding.
            self.next_k = math.ceil(t / self.step - 1e-9)
        while self.next_k * self.step < t:
            self.picture(self.next_k * self.step)
            self.next_k += 1
            self.count += 1

    def finish(self, t_last: float) -> None:
        """Take the pictures for the steps up to ``t_last`` inclusive."""
        if self.next_k is None or not math.isfinite(t_last):
            return
        self.before(t_last + 1e-9)


class _SteppingTracker:
    """The pipeline's tracker, with a :class:`_Stepper` hooked in front of ``process``.

    Everything else is passed through, so the pipeline cannot tell the difference.
    """

    def __init__(self, tracker: Tracker, stepper: _Stepper):
        self._tracker = tracker
        self._stepper = stepper

    def process(self, batch: Any) -> Any:
        self._stepper.before(float(batch.t))
        return self._tracker.process(batch)

    def __len__(self) -> int:
        return len(self._tracker)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)


@dataclass
class OfflineSummary:
    """What an offline replay did.

    Attributes
    ----------
    frames : int
        Recording frames read.
    detections : int
        ``det.*`` messages given to the tracker.
    truth : int
        ``truth.*`` messages copied.
    steps : int
        Track pictures written.
    alerts : int
        Alert events written.
    report : RecordingReport
        How reading the recording ended.
    status : dict
        The final status (pipeline counters; for the baseline, a few counts).
    """

    frames: int = 0
    detections: int = 0
    truth: int = 0
    steps: int = 0
    alerts: int = 0
    report: RecordingReport | None = None
    status: dict[str, Any] = field(default_factory=dict)


def _frames(reader: RecordingReader, bar: Any) -> Iterator[tuple[float, bytes, bytes]]:
    for frame in reader:
        bar.update(len(frame.topic) + len(frame.payload) + _FRAME_BYTES)
        yield frame.t_recv, bytes(frame.topic), bytes(frame.payload)


def tracker_config_from(meta: dict[str, Any], default: TrackerConfig) -> TrackerConfig:
    """The tracker settings an evidence bundle recorded (``default`` where it has none)."""
    recorded = meta.get("tracker_config")
    if not isinstance(recorded, dict):
        return default
    known = {f.name for f in fields(TrackerConfig)}
    values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
              for k, v in recorded.items() if k in known}
    try:
        return replace(default, **values)
    except (TypeError, ValueError):
        return default


def service_config_from(meta: dict[str, Any], default: ServiceConfig) -> ServiceConfig:
    """The reorder window and rule timing an evidence bundle recorded."""
    recorded = meta.get("service")
    if not isinstance(recorded, dict):
        return default
    keys = ("reorder_window", "alert_interval", "max_lateness", "max_future", "time_reference")
    return replace(default, **{k: recorded[k] for k in keys if k in recorded})


def replay_offline(
    recording: str | Path,
    out: str | Path,
    *,
    tracker: str = "bufferzone",
    zones: tuple[ZoneSet, LocalFrame] | None = None,
    tracker_config: TrackerConfig | None = None,
    service_config: ServiceConfig | None = None,
    rules: str | None = None,
    step: float = 1.0,
    timer_interval: float = 1.0,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> OfflineSummary:
    """Run the tracker (and, for ``bufferzone``, the alert rules) over a recording.

    Parameters
    ----------
    recording : str or Path
        Recording to read; a truncated tail ends the run at the last whole frame
        (said in the summary, the final ``status`` frame and a warning).
    out : str or Path
        Result file to create (see the module docstring for its format).
    tracker : {"bufferzone", "baseline"}
        ``bufferzone``: :class:`fusion.tracking.tracker.Tracker` in a :class:`Pipeline` with
        the alert engine. ``baseline``:
        :class:`replay.baseline.FilterpyLoopTracker` (one filterpy
        filter per track, 2-of-3 confirmation), no alerts; it has no out-of-sequence
        handling, so it gets every batch in measurement-time order (a head start
        over the live order the pipeline sees).
    zones : (ZoneSet, LocalFrame), optional
        Zones for the alert rules; by default from the recording's scenario metadata.
    tracker_config : TrackerConfig, optional
    service_config : ServiceConfig, optional
        Its ``reorder_window``, ``alert_interval``, ``max_lateness`` etc. apply.
    rules : str, optional
        Alert rules file; the shipped rules by default.
    step : float
        Measurement-time seconds between track pictures.
    timer_interval : float
        Recording-clock seconds between the pipeline's rule timer calls (the live
        service calls it every ``track_interval`` of wall time).
    overwrite : bool
        Replace an existing result file.
    show_progress : bool, optional
        Force the progress bar on or off (default: on a terminal).

    Returns
    -------
    OfflineSummary

    Raises
    ------
    ValueError
        Unknown tracker, or no zones for the bufferzone tracker.
    replay.recording.RecordingError
        Not a readable recording.
    """
    if tracker not in TRACKERS:
        raise ValueError(f"tracker must be one of {TRACKERS}, got {tracker!r}")
    tracker_config = tracker_config or TrackerConfig()
    service_config = service_config or ServiceConfig()
    summary = OfflineSummary()
    with RecordingReader(recording) as reader:
        header = reader.header
        scenario_meta = dict(header.metadata.get("scenario") or {})
        rule_set: Any = rules
        if header.metadata.get("kind") == "evidence":
            # A bundle carries the rules and settings that were in force: use them, so
            # the alert is reproduced on any machine with nothing else.
            if rules is None:
                rule_set = RuleSet.from_dict(header.metadata["rules"])
            tracker_config = tracker_config_from(header.metadata, tracker_config)
            service_config = service_config_from(header.metadata, service_config)
        if tracker == "bufferzone" and zones is None:
            if "zones" not in scenario_meta:
                raise ValueError(
                    f"{recording}: the recording names no scenario zones; "
                    "pass --scenario or --zones/--origin"
                )
            zones = zones_from_metadata(scenario_meta)
        metadata = {
            "kind": "result",
            "result_version": RESULT_VERSION,
            "writer": "bufferzone replay --offline",
            "tracker": tracker,
            "tracker_config": asdict(tracker_config) if tracker == "bufferzone" else {},
            "step": float(step),
            "service": {
                "reorder_window": service_config.reorder_window,
                "alert_interval": service_config.alert_interval,
                "timer_interval": float(timer_interval),
            },
            "rules": rules or ("evidence bundle" if rule_set is not rules else "default"),
            "source": Path(recording).name,
            "scenario": scenario_meta,
            # The zones the rules ran on (--zones may differ from the scenario's): eval
            # warns when the truth's incursions are into zones the alerts never knew.
            "alert_zones": sorted(zones[0].names) if zones is not None else [],
        }
        with (
            RecordingWriter(out, metadata, t_start=header.t_start, overwrite=overwrite) as writer,
            progress(
                reader.file_size, f"replay {Path(recording).name}", unit="B", enabled=show_progress
            ) as bar,
        ):
            frames = _frames(reader, bar)
            if tracker == "bufferzone":
                assert zones is not None  # checked above; narrows the type
                _run_pipeline(
                    frames,
                    writer,
                    summary,
                    zones,
                    tracker_config,
                    service_config,
                    rule_set,
                    step,
                    timer_interval,
                    header.t_start,
                )
            else:
                _run_baseline(frames, writer, summary, step)
            summary.report = reader.report
            report = reader.report
            summary.status["source_report"] = (
                None
                if report is None
                else {
                    "status": report.status,
                    "frames": report.frames,
                    "end_offset": report.end_offset,
                    "file_size": report.file_size,
                    "detail": report.detail,
                    "message": report.message(),
                }
            )
            t_end = max(summary.status.get("t") or header.t_start, header.t_start)
            writer.write(t_end, b"status", pack_map(summary.status))
    return summary


def _copy_truth(
    writer: RecordingWriter, topic: bytes, payload: bytes, summary: OfflineSummary
) -> None:
    try:
        t = decode_truth(payload)[0]
    except Exception:  # a bad truth message is the recording's problem, not ours
        return
    writer.write(t, topic, payload)
    summary.truth += 1


def _run_pipeline(
    frames: Iterator[tuple[float, bytes, bytes]],
    writer: RecordingWriter,
    summary: OfflineSummary,
    zones: tuple[ZoneSet, LocalFrame],
    tracker_config: TrackerConfig,
    service_config: ServiceConfig,
    rules: str | RuleSet | None,
    step: float,
    timer_interval: float,
    t_start: float,
) -> None:
    now = [t_start]  # the pipeline's clock: arrival time of the message in hand

    def emit(topic: bytes, payload: bytes) -> None:
        event = msgpack.unpackb(payload, raw=False)
        writer.write(float(event["t"]), topic, payload)
        summary.alerts += 1

    def picture(t: float) -> None:
        snap = core.confirmed(at=t)
        writer.write(
            t, b"track.update", encode_tracks(t, snap.ids, snap.x, snap.P, snap.cls, snap.conf)
        )

    core = Tracker(tracker_config)
    stepper = _Stepper(step, picture)
    rule_set = rules if isinstance(rules, RuleSet) else load_rules(rules)
    engine = AlertEngine(zones[0], rule_set, zones[1])
    pipe = Pipeline(
        _SteppingTracker(core, stepper),  # type: ignore[arg-type]
        engine,
        service_config,
        emit=emit,
        clock=lambda: now[0],
    )
    # The run id is random per service start; a fixed one keeps replays identical.
    pipe.run_id = "offline"
    next_timer = -math.inf
    for t_recv, topic, payload in frames:
        summary.frames += 1
        now[0] = t_recv
        if topic.startswith(b"det."):
            pipe.receive([topic, payload], t_recv)
            summary.detections += 1
        elif topic.startswith(b"truth."):
            _copy_truth(writer, topic, payload, summary)
        pipe.release()
        # The live loop's timer runs every track_interval of its clock; so does this,
        # on the recording's clock: dwell times and holds run out between batches.
        if t_recv >= next_timer:
            pipe.timer(t_recv)
            next_timer = t_recv + timer_interval
    pipe.release(flush=True)
    pipe.timer(now[0])
    stepper.finish(core.latest_time)
    summary.steps = stepper.count
    status = pipe.status()
    # Only what follows from the recording: the status also carries wall-clock
    # figures (uptime, latency, stage timings) that would make two runs differ.
    summary.status.update({k: status[k] for k in _DETERMINISTIC_STATUS if k in status})


def _baseline_class() -> Any:
    """The one-filterpy-filter-per-track reference tracker (``replay.baseline``)."""
    from replay.baseline import FilterpyLoopTracker

    return FilterpyLoopTracker


def _run_baseline(
    frames: Iterator[tuple[float, bytes, bytes]],
    writer: RecordingWriter,
    summary: OfflineSummary,
    step: float,
) -> None:
    FilterpyLoopTracker = _baseline_class()

    base = FilterpyLoopTracker()
    batches = []
    rejected = 0
    for _, topic, payload in frames:
        summary.frames += 1
        if topic.startswith(b"det."):
            try:
                batches.append(decode_batch(payload))
            except Exception:
                rejected += 1
                continue
            summary.detections += 1
        elif topic.startswith(b"truth."):
            _copy_truth(writer, topic, payload, summary)

    def picture(t: float) -> None:
        ids, x, P = base.confirmed(t)
        writer.write(t, b"track.update", encode_tracks(t, ids, x, P))

    stepper = _Stepper(step, picture)
    # Stable sort: equal times keep their arrival order.
    batches.sort(key=lambda b: b.t)
    with progress(len(batches), "baseline tracker", unit="batch") as bar:
        for batch in batches:
            stepper.before(float(batch.t))
            base.process(batch)
            bar.update()
    t_last = float(batches[-1].t) if batches else math.nan
    stepper.finish(t_last)
    summary.steps = stepper.count
    summary.status.update(
        {
            "type": "status",
            "tracker": "baseline",
            "batches": len(batches),
            "rejected_total": rejected,
            "live_tracks": len(base),
            "t": None if math.isnan(t_last) else t_last,
        }
    )
