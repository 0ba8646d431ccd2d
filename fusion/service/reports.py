"""What the pipeline says about itself: the track picture, the heartbeat, ``status``.

Functions of a :class:`~fusion.service.pipeline.Pipeline`, kept apart from the
per-message logic; the pipeline's methods of the same names call them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.messages import pack_map
from fusion.service.liveness import degraded_tracks
from fusion.service.settings import percentiles

if TYPE_CHECKING:
    from fusion.service.pipeline import Pipeline


def track_message(pipe: Pipeline) -> bytes:
    """The confirmed track picture, columnar like detection batches."""
    snap = pipe.tracker.confirmed()
    P_pos = snap.P[:, :2, :2]
    message = (
        {
            "type": "tracks",
            "t": float(pipe.tracker.latest_time) if len(pipe.tracker) else None,
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
    if pipe.liveness is not None:
        # 1 where only silent sensors saw the track lately (see .liveness)
        message["degraded"] = (
            degraded_tracks(snap.ids, snap.x, pipe.liveness).astype("u1").tobytes()
        )
    if pipe.stamper is not None:
        pipe.stamper.stamp_tracks(message)  # a lonlat column, time_utc, t_epoch
    return pack_map(message)


def heartbeat(pipe: Pipeline) -> dict[str, Any]:
    """A small 'alive' message for ``heartbeat``, sent every track interval, so
    subscribers (``bufferzone alerts``, ``ui``) can say loudly when it stops."""
    t = None if math.isinf(pipe.processed_until) else pipe.processed_until
    times = pipe.stamper.times(t) if pipe.stamper is not None else {}
    return {"type": "heartbeat", "run": pipe.run_id,
            "uptime": pipe.clock() - pipe.started,
            "interval": pipe.config.track_interval, "t": t, **times}


def status(pipe: Pipeline) -> dict[str, Any]:
    """Counters for operators: what came in, what was refused, how fast."""
    return {
        "type": "status",
        "uptime": pipe.clock() - pipe.started,
        "received": pipe.counters["received"],
        "batches": pipe.counters["batches"],
        "detections": pipe.counters["detections"],
        "rejected": dict(pipe.rejected),
        "rejected_total": sum(pipe.rejected.values()),
        **pipe.admission.status(),
        "late_batches": pipe.counters["late_batches"],
        "oosm_updates": pipe.tracker.stats["oosm_updates"],
        "initiations_refused": pipe.tracker.stats["initiations_refused"],
        "held": len(pipe._heap),
        "live_tracks": len(pipe.tracker),
        "confirmed_tracks": int(np.count_nonzero(pipe.tracker.tracks.status)),
        "tracks_confirmed_total": pipe.tracker.stats["confirmed"],
        # Track continuity at work: lost tracks a detection brought back, new tracks
        # that took a lost id, young tracks that took over a coasting one's id.
        "ids_continued": {
            how: pipe.tracker.stats[how] for how in ("revived", "reacquired", "superseded")
        },
        "open_alerts": len(pipe.engine.open_alerts()),
        "alerts": dict(pipe.alerts_by_kind),
        "latency_ms": percentiles(pipe.latencies),
        "latency_ms_established": percentiles(pipe.established_latencies),
        "latency_hist": pipe.latency_hist.as_status(),
        **(pipe.liveness.status() if pipe.liveness is not None else {}),
        "age_ms": percentiles(pipe.batch_ages),
        "alert_age_ms": percentiles(pipe.alert_ages),
        "stage_ms_per_batch": {
            stage: 1e3 * seconds / max(pipe.counters["batches"], 1)
            for stage, seconds in sorted(pipe.stage_seconds.items())
        },
        "t": None if math.isinf(pipe.processed_until) else pipe.processed_until,
        "run": pipe.run_id,
        "status_interval": pipe.config.status_interval,
        "alert_seq": dict(pipe.alert_seq),
        "checkpoints": dict(pipe.checkpoints),
        "restored": pipe.restored,
        "restarts": pipe.restarts,
        "downtime_at_most_s": pipe.downtime_at_most,
        # Subscribers check their zone filters against these (every subscriber hears
        # the status).
        "zones": sorted(pipe.engine.zones.names),
        **pipe.status_extra(),
    }
