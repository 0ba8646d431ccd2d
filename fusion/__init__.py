"""bufferzone's backend: wire schema, tracker, zones, alert rules and the ZeroMQ service.

The public API is re-exported here; everything else is an implementation detail.

Layout: the top of the package (``messages``, ``geo``, ``config``, ``security``) is what
``sensors`` may use; ``tracking/`` is the numeric core, ``alerting/`` the zones and rules,
``service/`` the pipeline, the ZeroMQ server, recovery, the alert log and the client.
"""

from fusion.alerting import AlertEngine, Zone, ZoneSet, load_rules
from fusion.geo import LocalFrame
from fusion.messages import DetectionBatch, WireError, decode_batch, encode_batch
from fusion.tracking import BatchResult, Tracker, TrackerConfig, TrackSnapshot

__all__ = [
    "AlertEngine",
    "BatchResult",
    "DetectionBatch",
    "LocalFrame",
    "Tracker",
    "TrackerConfig",
    "TrackSnapshot",
    "WireError",
    "Zone",
    "ZoneSet",
    "decode_batch",
    "encode_batch",
    "load_rules",
]
