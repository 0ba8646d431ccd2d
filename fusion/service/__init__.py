"""The tracker service: the socket-free pipeline, its ZeroMQ server, recovery, alert log, client.

- :mod:`~fusion.service.pipeline`: :class:`Pipeline` and :class:`ServiceConfig`, no sockets.
- :mod:`~fusion.service.server`: :class:`TrackerService`, the ZeroMQ loop around a pipeline.
- :mod:`~fusion.service.recovery`: checkpoints and :func:`restore_pipeline` after a crash.
- :mod:`~fusion.service.alertlog`: the durable, append-only alert log.
- :mod:`~fusion.service.client`: :class:`AlertClient`, the subscriber side.
"""

from fusion.service.pipeline import Pipeline, ServiceConfig, percentiles
from fusion.service.recovery import restore_pipeline
from fusion.service.server import TrackerService

__all__ = ["Pipeline", "ServiceConfig", "TrackerService", "percentiles", "restore_pipeline"]
