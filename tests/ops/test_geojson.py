"""RFC 7946 output: lon/lat order, closed rings, right-hand winding; and KML."""

from __future__ import annotations

import numpy as np
from lxml import etree

from replay.ops import geojson, kml
from replay.ops.geojson import rfc7946_polygon, signed_area
from tests.ops.conftest import ORIGIN, check_feature_collection, make_layers


def test_polygon_is_closed_and_wound_by_the_right_hand_rule():
    cw = [[0, 0], [0, 1], [1, 1], [1, 0]]  # clockwise, open
    hole_ccw = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]]
    out = rfc7946_polygon([cw, hole_ccw])
    assert out[0][0] == out[0][-1] and out[1][0] == out[1][-1]
    assert signed_area(out[0]) > 0 and signed_area(out[1]) < 0
    # a ring that is already right is left as it is (closed once, not twice)
    again = rfc7946_polygon(out)
    assert again == out


def test_zone_and_sensor_collections_conform():
    layers = make_layers()
    zones = geojson.zones_collection(layers)
    check_feature_collection(zones)
    assert zones["features"][0]["properties"]["name"] == "zone-a"
    check_feature_collection(geojson.sensors_collection(layers))


def test_alerts_without_lonlat_are_left_out_and_tracks_keep_ids():
    alerts = geojson.alerts_collection([
        {"alert_id": "a", "kind": "incursion", "position": {"lon": 23.8, "lat": 44.99},
         "evidence": ["r1"], "run": "x", "seq": 3},
        {"alert_id": "b", "kind": "incursion", "position": {"east": 1.0, "north": 2.0}},
    ])
    check_feature_collection(alerts)
    assert [f["id"] for f in alerts["features"]] == ["a"]
    assert alerts["features"][0]["properties"]["seq"] == 3
    tracks = geojson.tracks_collection([{"id": 5, "lon": 23.81, "lat": 44.97, "cls": "person"}])
    assert tracks["features"][0]["id"] == 5


def test_kml_parses_and_keeps_lon_lat_order():
    layers = make_layers()
    doc = kml.document("test", {
        "Zones": ("zone", geojson.zones_collection(layers)),
        "Tracks": ("track", geojson.track_paths_collection(
            {3: {"coordinates": [[23.81, 44.97], [23.82, 44.975]], "cls": "vehicle"}})),
        "Alerts": ("alert", geojson.alerts_collection(
            [{"alert_id": "a<&>", "position": {"lon": 23.8, "lat": 44.99}, "kind": "exit"}])),
    })
    root = etree.fromstring(doc)
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    assert root.tag == "{http://www.opengis.net/kml/2.2}kml"
    placemarks = root.findall(".//k:Placemark", ns)
    assert len(placemarks) == 3
    assert placemarks[2].find("k:name", ns).text == "a<&>"  # escaped, and read back whole
    outer = root.find(".//k:outerBoundaryIs/k:LinearRing/k:coordinates", ns).text.split()
    pts = np.array([[float(v) for v in c.split(",")] for c in outer])
    assert np.all(np.abs(pts[:, 0] - ORIGIN[0]) < 1) and np.all(np.abs(pts[:, 1] - ORIGIN[1]) < 1)
    assert (pts[0] == pts[-1]).all()
    line = root.find(".//k:LineString/k:coordinates", ns).text.split()
    assert line[0] == "23.8100000,44.9700000"
