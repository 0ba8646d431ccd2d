"""bufferzone's backend: wire schema, tracker, zones, alert rules and the ZeroMQ service.

The public API is re-exported here; everything else is an implementation detail.
"""

from fusion.geo import LocalFrame
from fusion.messages import DetectionBatch, WireError, decode_batch, encode_batch

__all__ = ["DetectionBatch", "LocalFrame", "WireError", "decode_batch", "encode_batch"]
