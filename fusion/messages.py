"""The wire schema: the one module that knows how bufferzone messages look on the wire.

Every message is a ZeroMQ multipart ``[topic, payload]``. The topic is ASCII and
hierarchical so that SUB prefix filters work (``det.drone.uav-3``,
``alert.zone-a.incursion``, ``track.update``, ``status``). The payload is one msgpack
map carrying a schema version ``v``.

Detection batches are columnar: one message per sensor frame or scan, a small header
plus the arrays as raw little-endian buffers, so decoding is ``np.frombuffer`` and never
a Python loop per detection.

Detection batch payload, schema version 1::

    v          int    1
    type       str    "det"
    sensor     str    sensor id, [A-Za-z0-9_.:-]{1,64}
    kind       str    one of SENSOR_KINDS
    seq        int    per-sensor sequence number, 0 <= seq < 2**63
    t          float  measurement time, seconds
    frame      str    "local" (east/north metres around the configured origin)
    n          int    number of detections M, 0 <= M <= MAX_DETECTIONS
    z          bin    M*2 float64 <  east, north
    R          bin    M*3 float64 <  packed covariance xx, xy, yy
    cls        bin    M uint8 (index into CLASSES) or nil
    conf       bin    M float32 < in [0, 1], or nil
    coverage   bin    K*2 float64 < polygon vertices (K >= 3), or nil = whole area
    pd         float  optional: probability that the sensor detects a target in its
                      coverage, in (0, 1]; absent = the tracker's default for the kind
    clutter    float  optional: expected false detections per square metre in this
                      batch, >= 0; absent = the tracker's default for the kind

The two optional fields are left out of the map when not set, so a batch without them
encodes to the same bytes as before they existed, and old payloads decode unchanged.

Anything that does not match raises :class:`WireError` with a ``reason`` (a short,
countable tag) and a message a person can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

SCHEMA_VERSION = 1
SENSOR_KINDS = ("drone", "satellite", "radar", "ugs")
CLASSES = ("unknown", "person", "vehicle", "drone")
MAX_DETECTIONS = 200_000
MAX_COVERAGE_VERTICES = 4096
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
_SENSOR_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}\Z")
_F8 = np.dtype("<f8")
_F4 = np.dtype("<f4")
_U1 = np.dtype("u1")


class WireError(ValueError):
    """A message that does not follow the wire schema.

    Parameters
    ----------
    reason : str
        Short tag for counting rejects (``"msgpack"``, ``"version"``, ``"shape"``,
        ``"nonfinite"``, ``"covariance"``, ...).
    message : str
        What is wrong, for a person.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, eq=False)
class DetectionBatch:
    """One sensor frame or scan: all detections a sensor reported at one time.

    Attributes
    ----------
    sensor_id : str
        Unique sensor name, e.g. ``"uav-3"``.
    sensor_kind : str
        One of :data:`SENSOR_KINDS`.
    seq : int
        Per-sensor sequence number; gaps mean lost messages.
    t : float
        Measurement time in seconds (not arrival time).
    z : ndarray, shape (M, 2), float64
        Detected positions, east and north in metres in the local frame.
    R : ndarray, shape (M, 2, 2), float64
        Measurement covariance of each detection, symmetric positive-definite.
    cls : ndarray, shape (M,), uint8, optional
        Class index into :data:`CLASSES` per detection.
    conf : ndarray, shape (M,), float32, optional
        Confidence of the class label, in [0, 1].
    coverage : ndarray, shape (K, 2), float64, optional
        Polygon the sensor could see at time ``t``; ``None`` means the whole area.
    pd : float, optional
        Detection probability of a target inside ``coverage``; ``None`` lets the
        tracker use its default for the sensor kind.
    clutter_density : float, optional
        Expected false detections per square metre in this batch; ``None`` lets the
        tracker use its default for the sensor kind.
    """

    sensor_id: str
    sensor_kind: str
    seq: int
    t: float
    z: np.ndarray
    R: np.ndarray
    cls: np.ndarray | None = None
    conf: np.ndarray | None = None
    coverage: np.ndarray | None = None
    pd: float | None = None
    clutter_density: float | None = None

    @property
    def topic(self) -> bytes:
        """The ZeroMQ topic this batch is published on: ``det.<kind>.<sensor id>``."""
        return f"det.{self.sensor_kind}.{self.sensor_id}".encode("ascii")

    def __len__(self) -> int:
        return int(self.z.shape[0])

    @classmethod
    def build(
        cls,
        sensor_id: str,
        sensor_kind: str,
        seq: int,
        t: float,
        z: np.ndarray,
        R: np.ndarray,
        classes: np.ndarray | None = None,
        conf: np.ndarray | None = None,
        coverage: np.ndarray | None = None,
        pd: float | None = None,
        clutter_density: float | None = None,
    ) -> DetectionBatch:
        """Make a batch from Python values, validated as if it had been decoded.

        ``R`` may be given as (M, 2, 2) or as one (2, 2) shared by all detections.
        Raises :class:`WireError` on anything :func:`decode_batch` would reject.
        """
        z = np.ascontiguousarray(z, dtype=_F8).reshape(-1, 2)
        R = np.asarray(R, dtype=_F8)
        if R.shape == (2, 2):
            R = np.broadcast_to(R, (z.shape[0], 2, 2))
        packed = _pack_cov(R) if R.ndim == 3 else R
        batch = cls(
            sensor_id,
            sensor_kind,
            int(seq),
            float(t),
            z,
            _unpack_cov(np.ascontiguousarray(packed, dtype=_F8).reshape(-1, 3)),
            None if classes is None else np.ascontiguousarray(classes, dtype=_U1),
            None if conf is None else np.ascontiguousarray(conf, dtype=_F4),
            None if coverage is None else np.ascontiguousarray(coverage, dtype=_F8),
            None if pd is None else float(pd),
            None if clutter_density is None else float(clutter_density),
        )
        _validate(batch)
        return batch


def _pack_cov(R: np.ndarray) -> np.ndarray:
    """(M, 2, 2) -> (M, 3) as xx, xy, yy."""
    return np.stack([R[:, 0, 0], R[:, 0, 1], R[:, 1, 1]], axis=1)


def _unpack_cov(packed: np.ndarray) -> np.ndarray:
    """(M, 3) xx, xy, yy -> (M, 2, 2) symmetric."""
    R = np.empty((packed.shape[0], 2, 2))
    R[:, 0, 0] = packed[:, 0]
    R[:, 0, 1] = R[:, 1, 0] = packed[:, 1]
    R[:, 1, 1] = packed[:, 2]
    return R


def encode_batch(batch: DetectionBatch) -> bytes:
    """Encode a batch as a msgpack payload (header plus raw little-endian buffers)."""
    obj = {
            "v": SCHEMA_VERSION,
            "type": "det",
            "sensor": batch.sensor_id,
            "kind": batch.sensor_kind,
            "seq": batch.seq,
            "t": batch.t,
            "frame": "local",
            "n": len(batch),
            "z": np.ascontiguousarray(batch.z, dtype=_F8).tobytes(),
            "R": np.ascontiguousarray(_pack_cov(batch.R), dtype=_F8).tobytes(),
            "cls": None if batch.cls is None else batch.cls.astype(_U1).tobytes(),
            "conf": None if batch.conf is None else batch.conf.astype(_F4).tobytes(),
            "coverage": None
            if batch.coverage is None
            else np.ascontiguousarray(batch.coverage, dtype=_F8).tobytes(),
        }
    # Only when set: a batch without them keeps the bytes it had before they existed.
    if batch.pd is not None:
        obj["pd"] = float(batch.pd)
    if batch.clutter_density is not None:
        obj["clutter"] = float(batch.clutter_density)
    return msgpack.packb(obj, use_bin_type=True)


def unpack_map(payload: bytes) -> dict[str, Any]:
    """Unpack a payload into its msgpack map, checking size and schema version.

    Raises
    ------
    WireError
        ``size`` when too large, ``msgpack`` when not a single msgpack map,
        ``version`` when ``v`` is missing or not :data:`SCHEMA_VERSION`.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise WireError("type", f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("size", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        # Limits stop a hostile header from declaring huge containers.
        obj = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_str_len=1 << 16,
            max_bin_len=MAX_PAYLOAD_BYTES,
            max_array_len=1 << 16,
            max_map_len=256,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types on hostile bytes
        raise WireError("msgpack", f"payload is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise WireError("msgpack", f"payload must be a msgpack map, got {type(obj).__name__}")
    version = obj.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise WireError(
            "version",
            f"schema version {version!r} not supported (this build speaks v{SCHEMA_VERSION})",
        )
    return obj


def _field(obj: dict[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise WireError("schema", f"field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise WireError("schema", f"field {name!r} has type {type(value).__name__}")
    return value


def _array(obj: dict[str, Any], name: str, dtype: np.dtype, count: int, optional: bool = False):
    value = obj.get(name)
    if value is None:
        if optional:
            return None
        raise WireError("schema", f"array {name!r} is missing")
    if not isinstance(value, bytes):
        raise WireError("schema", f"array {name!r} must be binary, got {type(value).__name__}")
    if len(value) != count * dtype.itemsize:
        raise WireError(
            "shape",
            f"array {name!r} has {len(value)} bytes, expected {count * dtype.itemsize} "
            f"({count} x {dtype.str})",
        )
    return np.frombuffer(value, dtype=dtype)


def _optional_float(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise WireError("schema", f"field {name!r} has type {type(value).__name__}")
    return float(value)


def decode_batch(payload: bytes) -> DetectionBatch:
    """Decode and validate a detection batch payload.

    Parameters
    ----------
    payload : bytes
        The second frame of a ``det.*`` message.

    Returns
    -------
    DetectionBatch
        Arrays are read-only views on ``payload`` (no copy).

    Raises
    ------
    WireError
        On anything that does not follow the schema; nothing else is ever raised.
    """
    obj = unpack_map(payload)
    if obj.get("type") != "det":
        raise WireError("schema", f"message type {obj.get('type')!r} is not 'det'")
    if obj.get("frame", "local") != "local":
        raise WireError("schema", f"frame {obj.get('frame')!r} is not 'local'")
    n = _field(obj, "n", int)
    if not 0 <= n <= MAX_DETECTIONS:
        raise WireError("size", f"n={n} detections is outside 0..{MAX_DETECTIONS}")
    coverage_raw = obj.get("coverage")
    n_vertices = 0
    if coverage_raw is not None:
        if not isinstance(coverage_raw, bytes) or len(coverage_raw) % 16:
            raise WireError("shape", "coverage must be K*2 float64 bytes")
        n_vertices = len(coverage_raw) // 16
    coverage = _array(obj, "coverage", _F8, 2 * n_vertices, optional=True)
    batch = DetectionBatch(
        sensor_id=_field(obj, "sensor", str),
        sensor_kind=_field(obj, "kind", str),
        seq=_field(obj, "seq", int),
        t=float(_field(obj, "t", (float, int))),
        z=_array(obj, "z", _F8, 2 * n).reshape(n, 2),
        R=_unpack_cov(_array(obj, "R", _F8, 3 * n).reshape(n, 3)),
        cls=_array(obj, "cls", _U1, n, optional=True),
        conf=_array(obj, "conf", _F4, n, optional=True),
        coverage=None if coverage is None else coverage.reshape(n_vertices, 2),
        pd=_optional_float(obj, "pd"),
        clutter_density=_optional_float(obj, "clutter"),
    )
    _validate(batch)
    return batch


def _validate(batch: DetectionBatch) -> None:
    if not isinstance(batch.sensor_id, str) or not _SENSOR_ID.match(batch.sensor_id):
        raise WireError(
            "sensor", f"sensor id {batch.sensor_id!r} must match [A-Za-z0-9_.:-]{{1,64}}"
        )
    if batch.sensor_kind not in SENSOR_KINDS:
        raise WireError("sensor", f"sensor kind {batch.sensor_kind!r} is not one of {SENSOR_KINDS}")
    if not 0 <= batch.seq < 2**63:
        raise WireError("schema", f"sequence number {batch.seq} is outside 0..2**63-1")
    if not math.isfinite(batch.t):
        raise WireError("nonfinite", f"measurement time {batch.t!r} is not finite")
    n = batch.z.shape[0]
    if batch.z.shape != (n, 2) or batch.R.shape != (n, 2, 2):
        raise WireError(
            "shape", f"z {batch.z.shape} and R {batch.R.shape} do not describe M detections"
        )
    if n > MAX_DETECTIONS:
        raise WireError("size", f"{n} detections exceed {MAX_DETECTIONS}")
    if not (np.isfinite(batch.z).all() and np.isfinite(batch.R).all()):
        raise WireError("nonfinite", "z or R holds NaN or infinity")
    xx, xy, yy = batch.R[:, 0, 0], batch.R[:, 0, 1], batch.R[:, 1, 1]
    if not np.array_equal(xy, batch.R[:, 1, 0]):
        raise WireError("covariance", "R is not symmetric")
    # Sylvester's criterion for a 2x2 symmetric matrix; an overflowing determinant
    # (absurd variances) fails it too.
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~((xx > 0) & (yy > 0) & (xx * yy - xy * xy > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise WireError(
            "covariance",
            f"R of detection {i} is not positive-definite "
            f"(xx={xx[i]:g}, xy={xy[i]:g}, yy={yy[i]:g})",
        )
    if batch.cls is not None:
        if batch.cls.shape != (n,):
            raise WireError("shape", f"cls has shape {batch.cls.shape}, expected ({n},)")
        if (batch.cls >= len(CLASSES)).any():
            raise WireError("schema", f"class index outside 0..{len(CLASSES) - 1}")
    if batch.conf is not None:
        if batch.conf.shape != (n,):
            raise WireError("shape", f"conf has shape {batch.conf.shape}, expected ({n},)")
        if not ((batch.conf >= 0) & (batch.conf <= 1)).all():  # NaN fails both
            raise WireError("nonfinite", "confidence must lie in [0, 1]")
    if batch.coverage is not None:
        k = batch.coverage.shape[0]
        if batch.coverage.shape != (k, 2) or not 3 <= k <= MAX_COVERAGE_VERTICES:
            raise WireError(
                "shape",
                f"coverage needs 3..{MAX_COVERAGE_VERTICES} vertices, got {batch.coverage.shape}",
            )
        if not np.isfinite(batch.coverage).all():
            raise WireError("nonfinite", "coverage holds NaN or infinity")
    if batch.pd is not None and not 0.0 < batch.pd <= 1.0:  # NaN fails too
        raise WireError("schema", f"pd must lie in (0, 1], got {batch.pd!r}")
    if batch.clutter_density is not None and not 0.0 <= batch.clutter_density < math.inf:
        raise WireError("schema", f"clutter must be finite and >= 0, got {batch.clutter_density!r}")


def pack_map(obj: dict[str, Any]) -> bytes:
    """Encode any other message (alerts, status, tracks) as a versioned msgpack map."""
    return msgpack.packb({"v": SCHEMA_VERSION, **obj}, use_bin_type=True)
