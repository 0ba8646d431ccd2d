"""The tracking core: batched Kalman kernels, gating, association, the track table, the Tracker.

Numbers in, numbers out: nothing here touches a socket, the alert rules or the service.
"""

from fusion.tracking.tracker import BatchResult, Tracker, TrackerConfig, TrackSnapshot

__all__ = ["BatchResult", "Tracker", "TrackerConfig", "TrackSnapshot"]
