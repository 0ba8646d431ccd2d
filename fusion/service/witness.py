"""What the service keeps for disputes, in one place the socket loop calls.

:class:`EvidenceKeeper` is driven by :class:`fusion.service.server.TrackerService`:

- on start, it loads the signing key into the alert log, writes a chained CONFIG
  record (zones, rules, settings in force: :mod:`fusion.service.provenance`) and
  signs the head;
- for every accepted message, it appends it to the raw-input recording
  (:mod:`fusion.service.intake`);
- every ``sign_interval`` seconds, and at shutdown, it signs the alert log's head;
- its :meth:`status` (the signed head and its signature, the current head, the raw
  input's file) goes out on the ``status`` topic, so every subscriber holds a witness
  that a later truncation or rewrite of the log would contradict.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fusion.config import ConfigError
from fusion.service.chain import CONFIG, NOTE, load_signer
from fusion.service.intake import IntakeRecorder
from fusion.service.pipeline import Pipeline
from fusion.service.provenance import service_context
from fusion.service.settings import ServiceConfig

__all__ = ["EvidenceKeeper"]

log = logging.getLogger(__name__)


class EvidenceKeeper:
    """Signed heads, the CONFIG record and the raw-input recording of one service run.

    Parameters
    ----------
    pipeline : Pipeline
    config : ServiceConfig
    """

    def __init__(self, pipeline: Pipeline, config: ServiceConfig):
        self.pipeline = pipeline
        self.config = config
        self.alert_log = pipeline.alert_log
        self.intake: IntakeRecorder | None = None
        self._next_sign = 0.0
        if self.alert_log is not None and config.signing_key and self.alert_log.signer is None:
            try:
                self.alert_log.signer = load_signer(config.signing_key)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"service.signing_key: {exc}") from None
        context = service_context(pipeline.engine, getattr(pipeline.tracker, "config", None),
                                  config)
        self._context = context
        if config.intake_dir:
            self.intake = IntakeRecorder(
                config.intake_dir, int(config.intake_rotate_bytes), config.intake_rotate_seconds,
                config.intake_retention, metadata=context,
            )

    def start(self) -> None:
        """Write what is in force into the log and sign the head as found."""
        alog = self.alert_log
        if alog is not None and alog.version >= 2:
            self._unvouched(alog)
            alog.append_record(CONFIG, {"type": "config", "t": time.time(),
                                        "run": self.pipeline.run_id, **self._context})
        self.sign("start")
        self._next_sign = time.monotonic() + self.config.sign_interval

    @staticmethod
    def _unvouched(alog: Any) -> None:
        """Say in the log which records our first signature will cover without vouching.

        Records written after the last signature before a crash (or appended by
        someone else meanwhile) are trusted for the open set, since the service may
        have written them; but the head signed now covers them through the chain, so a
        chained note says they were found unsigned and ``verify`` reports it.
        """
        if alog.signer is None:
            return
        for f in alog.recovery.findings:
            if f["kind"] == "unsigned":
                alog.append_record(NOTE, {
                    "type": "unvouched", "t": time.time(), "seq": f["seq"],
                    "detail": f"on restart, {f['detail']} (written before a crash, or "
                              "by another writer); later heads cover them without "
                              "vouching for them"})

    def accepted(self, frames: list[bytes], user_id: str | None) -> None:
        """Record one message the pipeline accepted (``[topic, payload]``)."""
        if self.intake is None:
            return
        topic = bytes(frames[0])
        # det.<kind>.<sensor id>: the topic was checked against the batch on intake.
        sensor_id = topic.split(b".", 2)[-1].decode("ascii", "replace")
        self.intake.write(topic, bytes(frames[1]), sensor_id, user_id)

    def sign(self, reason: str) -> dict[str, Any] | None:
        """Sign the alert log's head now (a full disk is logged, never raised)."""
        if self.alert_log is None:
            return None
        try:
            return self.alert_log.sign_head(reason)
        except OSError as exc:
            log.error("signing the alert log head failed: %s", exc)
            return None

    def tick(self, now: float) -> None:
        """Sign when ``sign_interval`` has passed (monotonic ``now``); flush raw input."""
        if now >= self._next_sign:
            self.sign("interval")
            self._next_sign = now + self.config.sign_interval
        if self.intake is not None:
            self.intake.flush()

    def finish(self) -> None:
        """Sign at shutdown and close the raw-input file."""
        self.sign("shutdown")
        if self.intake is not None:
            self.intake.close()

    def status(self) -> dict[str, Any]:
        """The witness for ``status``: signed head, current head, raw-input state."""
        alog = self.alert_log
        out: dict[str, Any] = {}
        if alog is not None:
            out["log_head"] = {"chained": alog.version >= 2, **alog.head,
                               "log_id": alog.log_id.hex(), "signed": alog.signed}
        if self.intake is not None:
            out["intake"] = self.intake.status()
        return out
