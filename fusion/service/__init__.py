"""The tracker service: the socket-free pipeline, its ZeroMQ server, recovery, alert log, client.

- :mod:`~fusion.service.settings`: :class:`ServiceConfig`, the ``[service]`` table.
- :mod:`~fusion.service.admission`: who may speak and when (time, sequence, table, budgets).
- :mod:`~fusion.service.pipeline`: :class:`Pipeline`, validate-reorder-track-alert, no sockets.
- :mod:`~fusion.service.server`: :class:`TrackerService`, the ZeroMQ loop around a pipeline.
- :mod:`~fusion.service.recovery`: checkpoints and :func:`restore_pipeline` after a crash.
- :mod:`~fusion.service.alertlog`: the durable, append-only alert log.
- :mod:`~fusion.service.client`: :class:`AlertClient`, the subscriber side.
"""

from fusion.service.pipeline import Pipeline
from fusion.service.recovery import restore_pipeline
from fusion.service.server import TrackerService
from fusion.service.settings import ServiceConfig, percentiles

__all__ = ["Pipeline", "ServiceConfig", "TrackerService", "percentiles", "restore_pipeline"]
