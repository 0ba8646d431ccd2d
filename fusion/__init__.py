"""bufferzone's backend: wire schema, tracker, zones, alert rules and the ZeroMQ service.

The public API is re-exported here; everything else is an implementation detail.

Layout: the top of the package (``messages``, ``geo``, ``config``, ``security``) is what
``sensors`` may use; ``tracking/`` is the numeric core, ``alerting/`` the zones and rules,
``service/`` the pipeline, the ZeroMQ server, recovery, the alert log and the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Name -> module. Loaded on first use (PEP 562): ``import fusion.messages`` from a
# sensor or the command line must not pay for scipy, shapely and pyproj.
_EXPORTS = {
    "AlertEngine": "fusion.alerting.engine",
    "BatchResult": "fusion.tracking.tracker",
    "DetectionBatch": "fusion.messages",
    "LocalFrame": "fusion.geo",
    "Tracker": "fusion.tracking.tracker",
    "TrackerConfig": "fusion.tracking.tracker",
    "TrackSnapshot": "fusion.tracking.tracker",
    "WireError": "fusion.messages",
    "Zone": "fusion.alerting.zones",
    "ZoneSet": "fusion.alerting.zones",
    "decode_batch": "fusion.messages",
    "encode_batch": "fusion.messages",
    "load_rules": "fusion.alerting.rules",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from fusion.alerting.engine import AlertEngine as AlertEngine
    from fusion.alerting.rules import load_rules as load_rules
    from fusion.alerting.zones import Zone as Zone
    from fusion.alerting.zones import ZoneSet as ZoneSet
    from fusion.geo import LocalFrame as LocalFrame
    from fusion.messages import DetectionBatch as DetectionBatch
    from fusion.messages import WireError as WireError
    from fusion.messages import decode_batch as decode_batch
    from fusion.messages import encode_batch as encode_batch
    from fusion.tracking.tracker import BatchResult as BatchResult
    from fusion.tracking.tracker import Tracker as Tracker
    from fusion.tracking.tracker import TrackerConfig as TrackerConfig
    from fusion.tracking.tracker import TrackSnapshot as TrackSnapshot


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
