"""The ops web server against a stand-in service: pushes, GeoJSON, metrics, silence."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import check_feature_collection


def test_page_and_static_files_are_served(ops_server):
    status, ctype, body = ops_server.get("/")
    assert status == 200 and "text/html" in ctype and b"leaflet.js" in body
    for path in ("static/leaflet/leaflet.js", "static/leaflet/leaflet.css", "static/app.js",
                 "static/leaflet/LICENSE"):
        status, _, body = ops_server.get(path)
        assert status == 200 and body, path
    layers = ops_server.json("layers.json")
    assert layers["zones"]["features"][0]["properties"]["name"] == "zone-a"
    assert layers["tiles"] is None  # no network needed by default


def test_tracks_and_alerts_reach_picture_geojson_and_metrics(ops_server, fake_service):
    fake_service.wait_subscribers()
    fake_service.status()
    fake_service.tracks(10.0, [1, 2], [[0.0, 500.0], [300.0, -200.0]],
                        v=[[3.0, 4.0], [0.0, 0.0]], cls=[2, 1])
    fake_service.alert("zone-a:incursion:7:0")
    pic = ops_server.wait_picture(lambda p: p["tracks"] and p["alerts"])
    assert pic["service"]["state"] == "live"
    t1 = next(t for t in pic["tracks"] if t["id"] == 1)
    assert t1["cls"] == "vehicle" and abs(t1["speed"] - 5.0) < 1e-9
    assert 23.7 < t1["lon"] < 23.9 and 44.9 < t1["lat"] < 45.1  # lon/lat, not swapped
    (alert,) = pic["alerts"]
    assert alert["evidence"] == ["radar-1", "drone-2"]
    assert alert["time_utc"].endswith("Z") and alert["t_epoch"] > 1e9
    tracks = ops_server.json("tracks.geojson")
    check_feature_collection(tracks)
    assert sorted(f["id"] for f in tracks["features"]) == [1, 2]
    alerts = ops_server.json("alerts.geojson")
    check_feature_collection(alerts)
    assert alerts["features"][0]["properties"]["run"] == "run-1"
    check_feature_collection(ops_server.json("zones.geojson"))
    check_feature_collection(ops_server.json("sensors.geojson"))
    status, ctype, body = ops_server.get("metrics")
    assert status == 200 and ctype.startswith("text/plain")
    names = {m.name for m in text_string_to_metric_families(body.decode())}
    assert {"bufferzone_batches", "bufferzone_open_alerts", "bufferzone_rejected"} <= names
    # closing the alert moves it to the closed list
    fake_service.alert("zone-a:incursion:7:0", event="close")
    pic = ops_server.wait_picture(lambda p: not p["alerts"] and p["closed"])
    assert pic["closed"][0]["alert_id"] == "zone-a:incursion:7:0"


def test_late_ui_starts_with_the_open_alerts_from_the_snapshot(fake_service, layers):
    from replay.ops.picture import OpsPicture
    from tests.ops.conftest import ServerThread

    fake_service.alert("zone-a:incursion:9:0")  # before anyone listens
    server = ServerThread(OpsPicture(layers, silence=5.0), fake_service.pub_endpoint,
                          fake_service.snap_endpoint, push_interval=0.2)
    try:
        pic = server.wait_picture(lambda p: p["alerts"])
        assert pic["alerts"][0]["alert_id"] == "zone-a:incursion:9:0"
    finally:
        server.stop()


def test_silent_service_is_reported_on_page_and_healthz(ops_server, fake_service):
    fake_service.wait_subscribers()
    fake_service.status()
    ops_server.wait_picture(lambda p: p["service"]["state"] == "live")
    status, _, _ = ops_server.get("healthz")
    assert status == 200
    # the service stops talking: the silence limit is 1 s in this fixture
    pic = ops_server.wait_picture(lambda p: p["service"]["state"] == "silent")
    assert pic["service"]["last_heard_s"] > 1.0
    status, _, body = ops_server.get("healthz")
    assert status == 503 and json.loads(body)["service"]["state"] == "silent"
    families = {m.name: m for m in text_string_to_metric_families(ops_server.get("metrics")[2]
                                                                  .decode())}
    assert families["bufferzone_service_up"].samples[0].value == 0.0
    fake_service.status()  # and it comes back
    ops_server.wait_picture(lambda p: p["service"]["state"] == "live")
