"""Cursor-on-Target: events parsed back by an XML parser and by TAK's own protobuf codec,
and sent over UDP and TCP to loopback listeners."""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest
import takproto
from lxml import etree

from replay.ops import cot

TRACK = {"id": 12, "lon": 23.8123456, "lat": 44.9812345, "cls": "vehicle", "conf": 0.8,
         "speed": 7.5, "heading": 270.0, "time_utc": "2026-12-02T03:00:00.000Z"}
ALERT = {"alert_id": "zone-a:incursion:12:0", "kind": "incursion", "event": "open",
         "severity": "high", "zone": "zone-a", "track_id": 12, "run": "r1", "cls": "vehicle",
         "position": {"east": 1.0, "north": 2.0, "lon": 23.81, "lat": 44.98},
         "evidence": ["radar-1", "uav-2"], "time_utc": "2026-12-02T03:00:01.000Z"}


def when(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.mark.parametrize("cls, cot_type", [("person", "a-u-G-U-C-I"), ("vehicle", "a-u-G-E-V"),
                                           ("drone", "a-u-A-M-F-Q"), ("unknown", "a-u-G")])
def test_track_event_type_by_class_point_and_stale(cls, cot_type):
    xml = cot.serialize(cot.track_event({**TRACK, "cls": cls}, run="r1"))
    ev = etree.fromstring(xml)  # lxml: well-formed, with its declaration
    assert ev.tag == "event" and ev.get("version") == "2.0"
    assert ev.get("type") == cot_type and ev.get("type").startswith("a-u-")
    assert ev.get("uid") == "bufferzone.r1.track.12"
    pt = ev.find("point")
    assert float(pt.get("lat")) == pytest.approx(44.9812345)
    assert float(pt.get("lon")) == pytest.approx(23.8123456)
    stale = (when(ev.get("stale")) - when(ev.get("start"))).total_seconds()
    assert stale == pytest.approx(cot.TRACK_STALE_S, abs=1)
    assert ev.find("detail/track").get("course") == "270.0"
    assert "track 12" in ev.find("detail/remarks").text


def test_alert_event_carries_kind_zone_evidence_id_and_stale():
    ev = ET.fromstring(cot.serialize(cot.alert_event(ALERT)))
    assert ev.get("type") == cot.ALERT_TYPE
    remarks = ev.find("detail/remarks").text
    for part in ("incursion", "zone-a", "radar-1,uav-2", "zone-a:incursion:12:0", "high"):
        assert part in remarks
    assert (when(ev.get("stale")) - when(ev.get("start"))).total_seconds() > 60
    assert ev.find("detail/link").get("uid") == "bufferzone.r1.track.12"
    closed = ET.fromstring(cot.serialize(cot.alert_event({**ALERT, "event": "close"})))
    assert closed.get("stale") == closed.get("start")  # TAK clients drop it now
    assert closed.get("uid") == ev.get("uid")
    assert cot.alert_event({**ALERT, "position": {"east": 1.0, "north": 2.0}}) is None


def test_events_survive_tak_protobuf_round_trip():
    for element in (cot.track_event(TRACK, "r1"), cot.alert_event(ALERT)):
        xml = cot.serialize(element)
        msg = takproto.parse_proto(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))
        event = msg.cotEvent
        assert event.uid == element.get("uid") and event.type == element.get("type")
        assert event.lat == pytest.approx(float(element.find("point").get("lat")))
        assert event.staleTime >= event.startTime


def test_sender_delivers_over_udp_and_tcp():
    async def go():
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5.0)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        tcp.settimeout(5.0)
        payload = cot.serialize(cot.track_event(TRACK, "r1"))
        try:
            sender = cot.CotSender(f"udp://127.0.0.1:{udp.getsockname()[1]}")
            await sender.open()
            await sender.send(payload)
            await sender.close()
            got, _ = udp.recvfrom(65536)
            assert got == payload
            sender = cot.CotSender(f"tcp://127.0.0.1:{tcp.getsockname()[1]}")
            await sender.open()
            conn, _ = tcp.accept()
            with conn:
                conn.settimeout(5.0)
                await sender.send(payload)
                await sender.close()
                data = b""
                while len(data) < len(payload):
                    chunk = conn.recv(65536)
                    assert chunk, "connection closed early"
                    data += chunk
            assert data == payload
        finally:
            udp.close()
            tcp.close()

    asyncio.run(go())


class _Sink:
    """Stands in for CotSender: keeps what ``pump`` sends, wakes the test on each."""

    def __init__(self):
        self.sent: list[ET.Element] = []
        self.grew = asyncio.Event()

    async def send(self, payload: bytes) -> None:
        self.sent.append(ET.fromstring(payload))
        self.grew.set()

    async def until(self, n: int) -> None:
        while len(self.sent) < n:
            self.grew.clear()
            await asyncio.wait_for(self.grew.wait(), timeout=5.0)

    def uids(self, start: int = 0) -> list[str]:
        return [e.get("uid") for e in self.sent[start:]]


class _Picture:
    def __init__(self):
        self.run = "r1"
        self.tracks = [dict(TRACK, id=i) for i in (1, 2, 3)]
        self.open: dict[str, dict] = {}
        self.closed: list[dict] = []


def test_pump_sends_alerts_at_once_tracks_once_per_interval_and_refreshes_open_alerts():
    """An alert wakes the pump but does not drag the whole track picture along (a busy
    demo sent ~400 events/s that way), and an open alert is re-sent before it goes
    stale on TAK clients."""

    async def go():
        now = [0.0]
        picture, sink = _Picture(), _Sink()
        changed, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.ensure_future(cot.pump(picture, sink, changed, stop, interval=1.0,
                                              clock=lambda: now[0], alert_refresh=100.0))
        try:
            await sink.until(3)  # the first picture goes out at once
            assert all(".track." in u for u in sink.uids())
            for k, event in enumerate(("open", "update", "update")):
                picture.open[ALERT["alert_id"]] = dict(ALERT, event=event, t=float(k))
                changed.set()
                await sink.until(4 + k)
            # three alert events woke the pump; no track went out with them
            assert sink.uids(3) == [cot.alert_uid(ALERT)] * 3
            now[0] = 1.0  # the track interval is over: the next wake sends the picture
            changed.set()
            await sink.until(9)
            assert all(".track." in u for u in sink.uids(6))
            now[0] = 101.5  # the open alert is re-sent before its stale time
            changed.set()
            await sink.until(13)
            assert sink.uids(9).count(cot.alert_uid(ALERT)) == 1
        finally:
            stop.set()
            changed.set()
            await asyncio.wait_for(task, timeout=5.0)

    asyncio.run(go())
