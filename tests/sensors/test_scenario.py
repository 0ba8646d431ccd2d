"""Scenario files: the default loads, zones convert both ways, bad files name the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from sensors.scenario import DroneSpec, RadarSpec, Scenario, ScenarioError, UgsSpec, load_default


def test_default_scenario_loads_with_every_sensor_kind():
    sc = load_default()
    assert sc.name == "default"
    assert 600.0 <= sc.duration <= 900.0
    assert {s.kind for s in sc.sensors} == {"radar", "drone", "satellite", "ugs"}
    zone = shapely.Polygon(sc.zone_specs[0].local)
    minx, miny, maxx, maxy = zone.bounds
    assert maxx - minx >= 20_000 and 1_000 <= maxy - miny <= 6_000


def test_zones_geojson_is_lonlat_and_round_trips_to_local(small):
    fc = small.zones_geojson()
    assert fc["type"] == "FeatureCollection"
    feature = fc["features"][0]
    assert feature["properties"]["name"] == "zone-t"
    assert feature["properties"]["kind"] == "buffer"
    ring = np.asarray(feature["geometry"]["coordinates"][0])
    assert np.array_equal(ring[0], ring[-1])
    assert np.all(np.abs(ring[:, 0] - 24.0) < 0.1) and np.all(np.abs(ring[:, 1] - 45.0) < 0.1)
    back = small.frame.to_local(ring[:-1])
    np.testing.assert_allclose(back, small.zone_specs[0].local, atol=1e-3)
    fc["features"].clear()  # a copy: the scenario keeps its zones
    assert small.zones_geojson()["features"]
    json.dumps(small.zones_geojson())  # plain JSON types only


def test_zone_given_in_lonlat_matches_local(small, small_text):
    ring = small.zones_geojson()["features"][0]["geometry"]["coordinates"][0]
    local_line = next(line for line in small_text.splitlines() if line.startswith("local = "))
    text = small_text.replace(local_line, f"lonlat = {json.dumps(ring)}")
    sc = Scenario.loads(text)
    np.testing.assert_allclose(sc.zone_specs[0].local, small.zone_specs[0].local, atol=1e-3)


def test_zone_from_geojson_file(tmp_path, small, small_text):
    (tmp_path / "zone.geojson").write_text(json.dumps(small.zones_geojson()))
    local_line = next(line for line in small_text.splitlines() if line.startswith("local = "))
    (tmp_path / "s.toml").write_text(small_text.replace(local_line, 'geojson = "zone.geojson"'))
    sc = Scenario.load(tmp_path / "s.toml")
    np.testing.assert_allclose(sc.zone_specs[0].local, small.zone_specs[0].local, atol=1e-3)


def test_sensor_specs_are_typed_and_ugs_lines_expand(small):
    kinds = {type(s) for s in small.sensors}
    assert RadarSpec in kinds and DroneSpec in kinds
    ugs = [s for s in small.sensors if isinstance(s, UgsSpec)]
    assert [s.id for s in ugs] == ["ugs-0", "ugs-1", "ugs-2"]
    assert [s.position for s in ugs] == [(-3000.0, 500.0), (0.0, 500.0), (3000.0, 500.0)]
    radar = next(s for s in small.sensors if isinstance(s, RadarSpec))
    assert radar.pd == (0.0, 0.9, 0.9, 0.9) and radar.latency == (0.1, 0.3)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("duration = 60.0\n", "", "duration"),
        ("rate = 1.0\n", "rate = -1.0\n", "sensors[0].rate"),
        ('kind = "satellite"', 'kind = "sonar"', "sensors[2].kind"),
        ("sigma = 20.0\n", "", "sensors[1].sigma"),
        ("clutter = 2.0\n", "clutter = -2.0\n", "sensors[0].clutter"),
        ("pd = 0.9\nclutter = 2.0", "pd = 1.5\nclutter = 2.0", "sensors[0].pd"),
        ('behaviour = "probe"', 'behaviour = "dance"', "targets[2].behaviour"),
        ('cls = "person"', 'cls = "tank"', "targets[0].cls"),
        ("revisit = 15.0", "revisit = 15.0\nrevisti = 3.0", "sensors[2].revisti"),
        ('origin = [24.0, 45.0]', 'origin = [24.0, 95.0]', "origin"),
        ('sides = ["north", "south"]\n', 'sides = ["north", "north"]\n', "zones[0].sides"),
        ("seed = 11\n", "seed = 1.5\n", "seed"),
    ],
)
def test_bad_scenario_fails_at_load_naming_the_field(small_text, old, new, field):
    assert old in small_text
    with pytest.raises(ScenarioError) as err:
        Scenario.loads(small_text.replace(old, new, 1))
    assert err.value.field == field
    assert repr(field) in str(err.value)


def test_self_crossing_zone_is_rejected(small_text):
    bowtie = "local = [[0.0, 0.0], [1000.0, 1000.0], [1000.0, 0.0], [0.0, 1000.0]]"
    line = next(line for line in small_text.splitlines() if line.startswith("local = "))
    with pytest.raises(ScenarioError, match="zones\\[0\\].local"):
        Scenario.loads(small_text.replace(line, bowtie))


def test_unreadable_and_malformed_files_fail_clearly(tmp_path):
    with pytest.raises(ScenarioError, match="'file'"):
        Scenario.load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("name = [unclosed")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        Scenario.load(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("old", "new", "field", "unknown"),
    [
        ("duration = 60.0\n", "duraton = 60.0\n", "duration", "duraton"),
        ("rate = 1.0\n", "rtae = 1.0\n", "sensors[0].rate", "sensors[0].rtae"),
        ("sigma = 20.0\n", "sgima = 20.0\n", "sensors[1].sigma", "sensors[1].sgima"),
    ],
)
def test_misspelt_required_key_is_named_as_unknown_beside_the_missing_one(
    small_text, old, new, field, unknown
):
    # Issue 16: the misspelling used to be hidden behind "'duration': is missing".
    assert old in small_text
    with pytest.raises(ScenarioError) as err:
        Scenario.loads(small_text.replace(old, new, 1))
    assert err.value.field == field
    message = str(err.value)
    assert "is missing" in message and f"{unknown!r} is not a known key" in message


def test_missing_key_alone_names_no_other_key(small_text):
    with pytest.raises(ScenarioError) as err:
        Scenario.loads(small_text.replace("duration = 60.0\n", "", 1))
    assert str(err.value) == "scenario field 'duration': is missing"
