"""UTC times and lon/lat beside measurement seconds and local metres, on outgoing messages.

The tracker works in seconds and local metres; an operations centre works in UTC and
lon/lat. :class:`Stamper` adds both to what the service publishes, at the edge, once:

- an alert event gets ``t_epoch`` (UTC epoch seconds), ``time_utc`` (ISO 8601 with a
  ``Z``) and ``lon``/``lat`` in its ``position`` when they are missing;
- a ``track.update`` message gets a ``lonlat`` column (n x 2 little-endian float64,
  longitude first, like GeoJSON) beside ``x``, and ``t_epoch``/``time_utc`` for ``t``.

Which epoch
-----------
Live sensors send UTC epoch seconds (see docs/DESIGN.md), which pass through unchanged.
Simulations and recordings of a scenario send scenario seconds from 0; a time below
:data:`EPOCH_FLOOR` is taken as such and placed on the clock at ``epoch0`` (by default
the wall-clock moment the first such time was stamped, so a demo's alerts read as
"now"). Every stamped message says which it was in ``time_basis`` (``"utc"`` or
``"scenario"``), so nobody mistakes a simulated time for a real one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fusion.geo import LocalFrame

# 2001-09-09T01:46:40Z. No sensor of this system measured before it, and no scenario
# runs 31 years, so the two kinds of time cannot be confused.
EPOCH_FLOOR = 1e9


def iso_utc(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: ``2026-12-02T03:12:00.123Z``."""
    stamp = datetime.fromtimestamp(epoch, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class Stamper:
    """Adds UTC time and lon/lat to outgoing alert events and track pictures.

    Parameters
    ----------
    frame : LocalFrame, optional
        The tracker's local frame; without it no lon/lat is added.
    epoch0 : float, optional
        UTC epoch of scenario time 0; by default fixed at the first scenario time
        stamped, from ``wall``.
    wall : callable
        UTC wall clock in epoch seconds (``time.time``); injectable for tests.
    """

    def __init__(
        self,
        frame: LocalFrame | None = None,
        epoch0: float | None = None,
        wall: Callable[[], float] = time.time,
    ):
        self.frame = frame
        self.epoch0 = epoch0
        self.wall = wall

    def epoch(self, t: float | None) -> float | None:
        """UTC epoch seconds of measurement time ``t`` (None for None or non-finite)."""
        if t is None or not math.isfinite(t):
            return None
        if t >= EPOCH_FLOOR:
            return float(t)
        if self.epoch0 is None:
            self.epoch0 = self.wall() - float(t)
        return self.epoch0 + float(t)

    def times(self, t: float | None) -> dict[str, Any]:
        """``{"t_epoch", "time_utc", "time_basis"}`` for ``t`` (values None when unknown)."""
        epoch = self.epoch(t)
        return {
            "t_epoch": epoch,
            "time_utc": None if epoch is None else iso_utc(epoch),
            "time_basis": None if t is None else ("utc" if t >= EPOCH_FLOOR else "scenario"),
        }

    def stamp_alert(self, event: dict[str, Any]) -> dict[str, Any]:
        """Add UTC time and the position's lon/lat to one alert event, in place; returns it."""
        event.update(self.times(event.get("t")))
        pos = event.get("position")
        if (
            self.frame is not None
            and isinstance(pos, dict)
            and pos.get("lon") is None
            and pos.get("east") is not None
        ):
            lon, lat = self.frame.to_lonlat(np.array([pos["east"], pos["north"]], dtype=float))
            pos["lon"], pos["lat"] = float(lon), float(lat)
        return event

    def stamp_alerts(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`stamp_alert` on each event (one projection per event without lon/lat)."""
        for event in events:
            self.stamp_alert(event)
        return events

    def stamp_tracks(self, message: dict[str, Any]) -> dict[str, Any]:
        """Add ``lonlat`` (n x 2 <f8 bytes) and UTC time to a track picture, in place.

        Parameters
        ----------
        message : dict
            The ``track.update`` map before packing: ``n`` and ``x`` (n x 4 <f8 bytes).
        """
        message.update(self.times(message.get("t")))
        n = int(message.get("n") or 0)
        if self.frame is None:
            return message
        x = np.frombuffer(message["x"], dtype="<f8").reshape(n, 4) if n else np.zeros((0, 4))
        lonlat = self.frame.to_lonlat(x[:, :2]) if n else np.zeros((0, 2))
        message["lonlat"] = np.ascontiguousarray(lonlat, dtype="<f8").tobytes()
        return message


__all__ = ["EPOCH_FLOOR", "Stamper", "iso_utc"]
