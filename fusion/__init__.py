"""bufferzone's backend: wire schema, tracker, zones, alert rules and the ZeroMQ service.

The public API is re-exported here; everything else is an implementation detail.
"""

from fusion.geo import LocalFrame
from fusion.messages import DetectionBatch, WireError, decode_batch, encode_batch
from fusion.tracker import BatchResult, Tracker, TrackerConfig, TrackSnapshot

__all__ = [
    "BatchResult",
    "DetectionBatch",
    "LocalFrame",
    "Tracker",
    "TrackerConfig",
    "TrackSnapshot",
    "WireError",
    "decode_batch",
    "encode_batch",
]
