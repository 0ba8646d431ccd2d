"""The ``[service]`` table: the tracker service's endpoints, timing and input bounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated

import numpy as np

from fusion.config import ConfigError, OneOf, from_mapping, load_toml
from fusion.messages import SENSOR_KINDS
from fusion.service.admission import TIME_REFERENCES
from fusion.service.budgets import DEFAULT_BUDGETS


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
        Batches older than the reference time, or than their own sensor's newest
        accepted time, by more than this are rejected (``too_old``).
    max_future : float
        Batches newer than the reference time by more than this are rejected
        (``future``); it bounds how far one sensor can move the tracker's clock.
    time_reference : {"feed", "wall"}
        What batch times are judged against: the lower median of the sensors' own
        times (replays, simulations at any speed) or the service's UTC clock (a live
        feed). See :mod:`fusion.service.admission`.
    track_interval, status_interval : float
        Wall-clock seconds between track pictures / status messages.
    alert_log : str
        Path of the durable alert log; "" for none.
    sensors : tuple of str
        Allowed sensor ids; empty allows any well-formed id.
    max_sensors : int
        Slots for sensor ids that are not configured; when all are held by ids heard
        within ``sensor_idle_expiry``, further ids are refused (``too_many_sensors``),
        so invented ids cannot grow the per-sensor tables nor evict a live sensor.
    sensor_idle_expiry : float
        Wall-clock seconds of silence after which an unconfigured id may be evicted.
    max_sensors_per_key : int
        Sensor ids one CURVE key may speak for (keys registered for a pattern).
    max_batch_detections, max_detection_rate : mapping of sensor kind to number
        Per-sensor budgets: detections in one batch, and detections per second of the
        sensor's measurement time (one full batch as burst). Kinds not given keep
        :data:`fusion.service.budgets.DEFAULT_BUDGETS`.
    checkpoint : str
        Path of the checkpoint file (tracker, alert engine, counters); "" for none.
    checkpoint_interval : float
        Wall-clock seconds between checkpoints.
    max_variance : float
        Largest eigenvalue a measurement covariance may have, m^2; batches with more
        are refused (``covariance_too_large``).
    probation_rate : float
        Batches a second shared by all sensor ids that are not configured and have
        never had a batch accepted (``probation``): what an id flood can cost.
    max_held : int
        Batches the reorder buffer holds at most; beyond it the service stops reading
        the detection socket, so a flood waits (and overflows) in ZeroMQ, not in memory.
    signing_key : str
        Ed25519 secret key file (``bufferzone keys --signing``) that signs the alert
        log's chain head; "" leaves heads unsigned.
    sign_interval : float
        Wall-clock seconds between head signatures (also one at shutdown).
    intake_dir : str
        Directory of the raw-input recordings (every accepted batch); "" for none.
    intake_rotate_bytes, intake_rotate_seconds : float
        A new raw-input file starts after this many bytes or seconds.
    intake_retention : float
        Seconds a finished raw-input file is kept; 0 keeps them all.
    """

    det_connect: tuple[str, ...] = ()
    det_bind: tuple[str, ...] = ()
    publish: str = "tcp://127.0.0.1:5560"
    snapshot: str = "tcp://127.0.0.1:5561"
    reorder_window: float = 0.5
    alert_interval: float = 0.5
    max_lateness: float = 300.0
    max_future: float = 10.0
    time_reference: str = "feed"
    track_interval: float = 1.0
    status_interval: float = 2.0
    alert_log: str = ""
    sensors: tuple[str, ...] = ()
    max_sensors: int = 10_000
    sensor_idle_expiry: float = 60.0
    max_sensors_per_key: int = 256
    max_batch_detections: Annotated[Mapping[str, float], OneOf((), SENSOR_KINDS)] = field(
        default_factory=lambda: MappingProxyType({k: b[0] for k, b in DEFAULT_BUDGETS.items()})
    )
    max_detection_rate: Annotated[Mapping[str, float], OneOf((), SENSOR_KINDS)] = field(
        default_factory=lambda: MappingProxyType({k: b[1] for k, b in DEFAULT_BUDGETS.items()})
    )
    checkpoint: str = ""
    checkpoint_interval: float = 10.0
    max_held: int = 10_000
    max_variance: float = 1e8
    probation_rate: float = 20.0
    signing_key: str = ""
    sign_interval: float = 60.0
    intake_dir: str = ""
    intake_rotate_bytes: float = 256 * 1024 * 1024
    intake_rotate_seconds: float = 3600.0
    intake_retention: float = 30 * 86400.0

    def __post_init__(self) -> None:
        for name in ("reorder_window", "alert_interval", "max_lateness", "max_future"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"service.{name} must be >= 0, got {getattr(self, name)}")
        if self.time_reference not in TIME_REFERENCES:
            raise ConfigError(
                f"service.time_reference must be one of {', '.join(TIME_REFERENCES)}, "
                f"got {self.time_reference!r}"
            )
        if not self.probation_rate > 0:
            raise ConfigError(f"service.probation_rate must be > 0, got {self.probation_rate}")
        if not self.max_variance > 0:
            raise ConfigError(f"service.max_variance must be > 0, got {self.max_variance}")
        for name in ("max_batch_detections", "max_detection_rate"):
            for kind, value in getattr(self, name).items():
                if not value >= 0:
                    raise ConfigError(f"service.{name}.{kind} must be >= 0, got {value}")
        if not self.intake_retention >= 0:
            raise ConfigError(f"service.intake_retention must be >= 0, got {self.intake_retention}")
        for name in ("track_interval", "status_interval", "checkpoint_interval", "sign_interval",
                     "intake_rotate_bytes", "intake_rotate_seconds"):
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
