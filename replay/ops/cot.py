"""Cursor-on-Target events for ATAK / WinTAK / TAK Server, built and sent with PyTAK.

Tracks become unknown-affiliation (``a-u-...``) points typed by class, with a
``<track>`` (course, speed) and remarks; alerts become spot-map markers
(``b-m-p-s-m``) whose remarks carry kind, zone, severity, evidence and alert id. Every
event has ``time``/``start`` now and a ``stale`` after which TAK clients grey it out
and drop it: a few track intervals for tracks (a track the service no longer reports
fades by itself), minutes for open alerts, and ``stale = start`` for a closed alert,
which tells clients to remove the marker at once.

PyTAK (the reference Python TAK library) builds the XML elements and opens the
connection (``tcp://``, ``udp://``, ``tls://`` with its usual settings), so the events
are what TAK clients expect, down to the time format.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytak

# CoT type by track class: 'a' atom, 'u' unknown affiliation, then the MIL-STD-2525
# function path TAK clients draw as an icon.
COT_TYPES = {
    "person": "a-u-G-U-C-I",  # ground unit, combat, infantry
    "vehicle": "a-u-G-E-V",  # ground equipment, vehicle
    "drone": "a-u-A-M-F-Q",  # air, military, fixed wing, unmanned (UAV)
    "unknown": "a-u-G",  # ground, nothing more known
}
ALERT_TYPE = "b-m-p-s-m"  # bits, map, point, spot, marker
# TAK colours as signed ARGB integers, by severity.
SEVERITY_ARGB = {
    "critical": -65536,  # red
    "high": -65536,
    "medium": -23296,  # orange
    "low": -256,  # yellow
    "info": -1,  # white
}
TRACK_STALE_S = 15
ALERT_STALE_S = 300
UID_PREFIX = "bufferzone"


def track_uid(track_id: int, run: str | None = None) -> str:
    """A stable CoT uid per track of a service run (ids restart with the service)."""
    return f"{UID_PREFIX}.{run or 'run'}.track.{int(track_id)}"


def track_event(track: dict[str, Any], run: str | None = None,
                stale: int = TRACK_STALE_S) -> ET.Element:
    """One confirmed track (an :class:`~replay.ops.picture.OpsPicture` track) as CoT."""
    cls = str(track.get("cls", "unknown"))
    # 7 decimals (about 1 cm) instead of pytak's default 4 (about 10 m, coarser than
    # the tracker's accuracy).
    point = pytak.cot_point(lat=track["lat"], lon=track["lon"], ce=_ce(track), precision=7)
    return pytak.cot_event(
        uid=track_uid(track["id"], run),
        stale=stale,
        cot_type=COT_TYPES.get(cls, COT_TYPES["unknown"]),
        how="m-f",  # machine, fused
        point=point,
        detail=_track_detail(track),
        callsign=f"BZ-{track['id']} {cls}",
    )


def _track_detail(track: dict[str, Any]) -> ET.Element:
    detail = pytak.cot_detail(flow_tag=False)
    course = ET.SubElement(detail, "track")
    course.set("course", f"{float(track.get('heading') or 0):.1f}")  # degrees from north
    course.set("speed", f"{float(track.get('speed') or 0):.2f}")  # m/s, as CoT has it
    cls = str(track.get("cls", "unknown"))
    pytak.add_remarks(detail, [
        f"bufferzone track {track['id']}",
        f"class {cls} ({float(track.get('conf') or 0):.2f})",
        f"speed {float(track.get('speed') or 0):.1f} m/s",
        "DEGRADED: its only sensor is silent" if track.get("degraded") else None,
        f"at {track.get('time_utc')}" if track.get("time_utc") else None,
    ], "; ")
    return detail


def _ce(item: dict[str, Any]) -> str:
    # Circular error (m) where known; 9999999 is CoT's "unknown".
    ce = item.get("ce")
    return f"{float(ce):.1f}" if isinstance(ce, int | float) else "9999999.0"


def alert_uid(alert: dict[str, Any]) -> str:
    return f"{UID_PREFIX}.alert.{alert.get('alert_id')}"


def alert_event(alert: dict[str, Any], stale: int = ALERT_STALE_S) -> ET.Element | None:
    """One alert event as a CoT marker; None when it has no lon/lat to put it at."""
    pos = alert.get("position") or {}
    if pos.get("lat") is None or pos.get("lon") is None:
        return None
    kind, zone = alert.get("kind", "?"), alert.get("zone", "?")
    severity = str(alert.get("severity", "info"))
    closed = alert.get("event") == "close"
    remarks = [
        f"{'CLOSED ' if closed else ''}{kind} in {zone}",
        f"severity {severity}",
        f"track {alert.get('track_id')}" if alert.get("track_id") is not None else None,
        f"sensor {alert.get('sensor')}" if alert.get("sensor") else None,
        f"evidence {','.join(map(str, alert.get('evidence') or [])) or '-'}",
        f"alert {alert.get('alert_id')}",
        f"at {alert.get('time_utc')}" if alert.get("time_utc") else None,
    ]
    detail = pytak.cot_detail(flow_tag=False)
    colour = ET.SubElement(detail, "color")
    colour.set("argb", str(SEVERITY_ARGB.get(severity, -1)))
    if alert.get("track_id") is not None and alert.get("run"):
        link = ET.SubElement(detail, "link")
        link.set("uid", track_uid(alert["track_id"], alert.get("run")))
        link.set("relation", "p-p")  # parent: the track this alert is about
        link.set("type", COT_TYPES.get(str(alert.get("cls")), COT_TYPES["unknown"]))
    pytak.add_remarks(detail, remarks, "; ")
    event = pytak.cot_event(
        uid=alert_uid(alert),
        stale=stale,
        cot_type=ALERT_TYPE,
        how="m-g",
        point=pytak.cot_point(lat=pos["lat"], lon=pos["lon"], precision=7),
        detail=detail,
        callsign=f"{kind} {zone}",
    )
    if closed:
        event.set("stale", event.get("start", ""))  # remove the marker now
    return event


def serialize(event: ET.Element) -> bytes:
    """XML bytes with declaration, as TAK clients read them."""
    return pytak.serialize_cot(event)


class CotSender:
    """Sends CoT events to ``udp://HOST:PORT`` or ``tcp://HOST:PORT`` (PyTAK's transports).

    Parameters
    ----------
    url : str
        A PyTAK ``COT_URL``: ``udp://``, ``tcp://``, ``tls://`` (with PyTAK's
        ``PYTAK_TLS_*`` settings in ``config``).
    config : dict, optional
        Further PyTAK settings.
    """

    def __init__(self, url: str, config: dict[str, str] | None = None):
        self.url = url
        scheme, sep, rest = url.partition("://")
        if scheme == "udp":
            # Write-only: we only send; without it PyTAK also binds a reader on the
            # destination port, which fails when the TAK client runs on this host.
            url = f"udp+wo{sep}{rest}"
        self.config = {"COT_URL": url, **(config or {})}
        self.writer: Any = None
        self.sent = 0

    async def open(self) -> None:
        _, self.writer = await pytak.protocol_factory(self.config)

    async def send(self, payload: bytes) -> None:
        if hasattr(self.writer, "send"):  # PyTAK's UDP client
            await self.writer.send(payload)
        else:  # an asyncio StreamWriter (tcp, tls)
            self.writer.write(payload)
            await self.writer.drain()
        self.sent += 1

    async def close(self) -> None:
        if self.writer is None:
            return
        close = getattr(self.writer, "close", None)
        if close is not None:
            close()
        wait = getattr(self.writer, "wait_closed", None)
        if wait is not None:
            try:
                await wait()
            except (ConnectionError, OSError):
                pass


async def pump(picture: Any, sender: CotSender, changed: asyncio.Event,
               stop: asyncio.Event, interval: float = 1.0,
               clock: Callable[[], float] = time.monotonic,
               alert_refresh: float = ALERT_STALE_S / 2) -> None:
    """Send alert events as they come and the track picture every ``interval`` seconds.

    Each alert event goes out once, as soon as ``changed`` is set; an alert still open
    is sent again every ``alert_refresh`` seconds, so that a long quiet one (a sensor
    silent for an hour) does not pass its ``stale`` time and vanish from TAK clients
    while it is open. The tracks wait for their interval even when alerts wake the
    loop: sending the whole picture on every alert event sent a busy demo's 130
    tracks several times a second (about 400 events/s at 8x speed).
    """
    sent: dict[tuple[str, str, Any], float] = {}  # alert event -> when it was sent
    due = clock()  # the first picture goes out at once
    while not stop.is_set():
        try:
            await asyncio.wait_for(changed.wait(), timeout=max(0.0, due - clock()))
        except TimeoutError:
            pass
        changed.clear()
        now = clock()
        alerts = list(picture.open.values()) + list(picture.closed)
        held = set()
        for alert in alerts:
            key = (str(alert.get("alert_id")), str(alert.get("event")), alert.get("t"))
            held.add(key)
            last = sent.get(key)
            if last is not None and (alert.get("event") == "close"
                                     or now - last < alert_refresh):
                continue
            sent[key] = now
            event = alert_event(alert)
            if event is not None:
                await sender.send(serialize(event))
        # Bounded: forget alert events no longer held by the picture.
        for key in [k for k in sent if k not in held]:
            del sent[key]
        if now < due:
            continue
        due = max(due + interval, now)  # no catch-up burst after a stall
        for track in picture.tracks:
            await sender.send(serialize(track_event(track, picture.run)))
