"""/metrics in the Prometheus text format, parsed back by prometheus-client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fusion.messages import pack_map, unpack_map
from fusion.service.latency import LatencyHistogram
from replay.ops.metrics import render
from replay.ops.picture import OpsPicture
from tests.ops.conftest import make_layers


def families(picture):
    return {m.name: m for m in text_string_to_metric_families(render(picture).decode())}


def test_status_becomes_bufferzone_metrics():
    clock = [100.0]
    pic = OpsPicture(make_layers(), silence=5.0, clock=lambda: clock[0])
    hist = LatencyHistogram()
    for v in (0.0004, 0.002, 0.002, 0.3):
        hist.observe(v)
    status = {"type": "status", "run": "r", "batches": 10, "detections": 25, "received": 12,
              "rejected": {"decode": 2, "too_old": 1}, "gaps": {"radar-1": 4},
              "late_batches": 3, "live_tracks": 7, "confirmed_tracks": 5, "held": 0,
              "ids_continued": {"revived": 2, "reacquired": 1, "superseded": 0},
              "alerts": {"incursion.open": 2, "incursion.close": 1},
              "latency_ms": {"p50": 1.0, "p99": 3.0, "max": 300.0},
              "latency_hist": hist.as_status(),
              "sensors": {"radar-1": {"kind": "radar", "last_seen_s": 0.4, "silent": False},
                          "ugs-2": {"kind": "ugs", "last_seen_s": 40.0, "silent": True}}}
    pic.on_message(b"status", unpack_map(pack_map(status)))  # through the wire format
    pic.on_alert({"alert_id": "a", "kind": "incursion", "event": "open", "t": 1.0})
    pic.on_alert({"alert_id": "b", "kind": "sensor_silent", "event": "open", "t": 1.0})
    fams = families(pic)
    assert all(name.startswith("bufferzone_") for name in fams)
    value = lambda name, **labels: next(  # noqa: E731
        s.value for s in fams[name].samples
        if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith("_created"))
    assert fams["bufferzone_batches"].type == "counter"
    assert value("bufferzone_batches") == 10
    assert value("bufferzone_detections") == 25
    assert value("bufferzone_rejected", reason="too_old") == 1
    assert value("bufferzone_sequence_gaps", sensor="radar-1") == 4
    assert value("bufferzone_late_batches") == 3
    assert value("bufferzone_confirmed_tracks") == 5 and value("bufferzone_live_tracks") == 7
    assert fams["bufferzone_track_ids_continued"].type == "counter"
    assert value("bufferzone_track_ids_continued", how="revived") == 2
    assert value("bufferzone_open_alerts", kind="sensor_silent") == 1
    assert value("bufferzone_alert_events", kind="incursion", event="open") == 2
    assert value("bufferzone_sensor_last_seen_seconds", sensor="ugs-2") == 40.0
    assert value("bufferzone_sensor_silent", sensor="ugs-2") == 1.0
    assert value("bufferzone_service_up") == 1.0
    lat = fams["bufferzone_latency_seconds"]
    assert lat.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in lat.samples if s.name.endswith("_bucket")}
    assert buckets["+Inf"] == 4 and buckets["0.0025"] == 3
    clock[0] += 6.0  # past the silence limit
    assert value_of(families(pic), "bufferzone_service_up") == 0.0


def value_of(fams, name):
    return fams[name].samples[0].value


def test_metrics_before_any_status_still_parse():
    fams = families(OpsPicture(make_layers()))
    assert "bufferzone_service_up" in fams
