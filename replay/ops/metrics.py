"""Prometheus metrics (``bufferzone_*``) from the service's newest ``status`` message.

The service already counts everything an operator graphs; this module only says it
in the Prometheus text format, through prometheus-client's own types, so a scraper
gets correct escaping, ``# TYPE`` lines and counter ``_total`` suffixes. A custom
collector reads the picture at scrape time: nothing is copied between scrapes, and a
restarted service's counters simply start again (Prometheus handles counter resets).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from replay.ops.picture import OpsPicture

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class StatusCollector(Collector):
    """Metrics from an :class:`OpsPicture`'s status, service state and open alerts."""

    def __init__(self, picture: OpsPicture):
        self.picture = picture

    def collect(self) -> Iterator[Metric]:
        pic = self.picture
        st = pic.status
        service = pic.service_state()
        up = GaugeMetricFamily(
            "bufferzone_service_up", "1 while the service is heard within its silence limit"
        )
        up.add_metric([], 1.0 if service["state"] == "live" else 0.0)
        yield up
        heard = GaugeMetricFamily(
            "bufferzone_service_last_heard_seconds", "Seconds since the service was last heard"
        )
        if service["last_heard_s"] is not None:
            heard.add_metric([], float(service["last_heard_s"]))
        yield heard
        for key, doc in (
            ("received", "Detection batches received"),
            ("batches", "Detection batches processed"),
            ("detections", "Detections processed"),
            ("late_batches", "Batches older than the tracker's time, fused out of sequence"),
            ("oosm_updates", "Out-of-sequence track updates"),
        ):
            c = CounterMetricFamily(f"bufferzone_{key}", doc)
            if _num(st.get(key)) is not None:
                c.add_metric([], float(st[key]))
            yield c
        rejected = CounterMetricFamily(
            "bufferzone_rejected", "Messages refused, by reason", labels=["reason"]
        )
        for reason, n in sorted((st.get("rejected") or {}).items()):
            rejected.add_metric([str(reason)], float(n))
        yield rejected
        gaps = CounterMetricFamily(
            "bufferzone_sequence_gaps", "Messages missing per sensor (sequence gaps)",
            labels=["sensor"],
        )
        for sensor, n in sorted((st.get("gaps") or {}).items()):
            gaps.add_metric([str(sensor)], float(n))
        yield gaps
        for key, doc in (
            ("live_tracks", "Tracks in the table, tentative and confirmed"),
            ("confirmed_tracks", "Confirmed tracks"),
            ("held", "Batches held in the reorder buffer"),
        ):
            g = GaugeMetricFamily(f"bufferzone_{key}", doc)
            if _num(st.get(key)) is not None:
                g.add_metric([], float(st[key]))
            yield g
        continued = CounterMetricFamily(
            "bufferzone_track_ids_continued",
            "Track ids kept across a loss or a manoeuvre, by how (revived, reacquired, "
            "superseded)", labels=["how"],
        )
        for how, n in sorted((st.get("ids_continued") or {}).items()):
            if _num(n) is not None:
                continued.add_metric([str(how)], float(n))
        yield continued
        by_kind = GaugeMetricFamily(
            "bufferzone_open_alerts", "Open alerts by kind (as this subscriber holds them)",
            labels=["kind"],
        )
        counts: dict[str, int] = {}
        for alert in pic.open.values():
            kind = str(alert.get("kind"))
            counts[kind] = counts.get(kind, 0) + 1
        for kind, n in sorted(counts.items()):
            by_kind.add_metric([kind], float(n))
        yield by_kind
        events = CounterMetricFamily(
            "bufferzone_alert_events", "Alert events published, by kind and event",
            labels=["kind", "event"],
        )
        for key, n in sorted((st.get("alerts") or {}).items()):
            kind, _, event = str(key).partition(".")
            events.add_metric([kind, event], float(n))
        yield events
        yield from self._latency(st)
        yield from self._sensors(st)

    def _latency(self, st: dict[str, Any]) -> Iterator[Metric]:
        hist = st.get("latency_hist")
        if isinstance(hist, dict) and hist.get("le") and hist.get("counts"):
            # A service with the cumulative histogram: the real thing.
            h = HistogramMetricFamily(
                "bufferzone_latency_seconds",
                "Receipt of a batch to its alerts published",
                buckets=[
                    (str(le) if isinstance(le, str) else repr(float(le)), float(c))
                    for le, c in zip(hist["le"], hist["counts"], strict=False)
                ],
                sum_value=float(hist.get("sum", 0.0)),
            )
            yield h
        quantiles = GaugeMetricFamily(
            "bufferzone_latency_recent_seconds",
            "Latency percentiles over the service's recent batches",
            labels=["quantile"],
        )
        lat = st.get("latency_ms") or {}
        for name, q in (("p50", "0.5"), ("p99", "0.99"), ("max", "1")):
            if _num(lat.get(name)) is not None:
                quantiles.add_metric([q], float(lat[name]) / 1e3)
        yield quantiles

    def _sensors(self, st: dict[str, Any]) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "bufferzone_sensor_last_seen_seconds", "Seconds since each sensor's last batch",
            labels=["sensor", "kind"],
        )
        silent = GaugeMetricFamily(
            "bufferzone_sensor_silent", "1 while a sensor is reported silent",
            labels=["sensor", "kind"],
        )
        for sensor, info in sorted((st.get("sensors") or {}).items()):
            if not isinstance(info, dict):
                continue
            labels = [str(sensor), str(info.get("kind", ""))]
            if _num(info.get("last_seen_s")) is not None:
                age.add_metric(labels, float(info["last_seen_s"]))
            silent.add_metric(labels, 1.0 if info.get("silent") else 0.0)
        yield age
        yield silent


def render(picture: OpsPicture) -> bytes:
    """The Prometheus text exposition of ``picture``'s metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(picture))
    return generate_latest(registry)
