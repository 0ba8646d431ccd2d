"""Zones: GeoJSON loading, containment, P(inside) against Monte Carlo, time to breach, sides."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion.alerting.zones import Zone, ZoneError, ZoneSet
from fusion.geo import LocalFrame

FRAME = LocalFrame(33.0, 35.0)


def lonlat_ring(frame, en):
    ring = frame.to_lonlat(np.asarray(en, float)).tolist()
    return ring + [ring[0]]


def feature(name, geometry, **props):
    return {"type": "Feature", "properties": {"name": name, **props}, "geometry": geometry}


def collection():
    shell = lonlat_ring(FRAME, [[-500, -100], [500, -100], [500, 100], [-500, 100]])
    hole = lonlat_ring(FRAME, [[-50, -20], [-50, 20], [50, 20], [50, -20]])
    part1 = lonlat_ring(FRAME, [[1000, 0], [1200, 0], [1200, 200], [1000, 200]])
    part2 = lonlat_ring(FRAME, [[2000, 0], [2200, 0], [2200, 200], [2000, 200]])
    return {
        "type": "FeatureCollection",
        "features": [
            feature(
                "zone-a",
                {"type": "Polygon", "coordinates": [shell, hole]},
                kind="buffer",
                side_names={"north": "blue", "south": "red"},
                sector=7,
            ),
            feature(
                "zone-b",
                {"type": "MultiPolygon", "coordinates": [[part1], [part2]]},
                kind="restricted",
            ),
        ],
    }


def test_geojson_polygon_with_hole_and_multipolygon():
    zones = ZoneSet.from_geojson(collection(), FRAME)
    assert zones.names == ["zone-a", "zone-b"]
    a, b = zones["zone-a"], zones["zone-b"]
    assert a.kind == "buffer" and b.kind == "restricted" and a.properties["sector"] == 7
    assert a.geometry.area == pytest.approx(1000 * 200 - 100 * 40, rel=1e-6)
    pts = np.array([[0, 0], [0, 50], [400, -90], [600, 0]], float)  # hole, inside, inside, outside
    np.testing.assert_array_equal(a.contains(pts), [False, True, True, False])
    np.testing.assert_array_equal(
        b.contains(np.array([[1100, 100], [2100, 100], [1600, 100]])), [True, True, False]
    )
    assert a.sides == ("blue", "red")
    np.testing.assert_allclose(a.distance(pts), [20, 0, 0, 100], atol=0.01)
    np.testing.assert_allclose(a.signed_distance(pts)[:3], [-20, 30, 10], atol=0.01)


def test_geojson_lonlat_round_trip_and_file(tmp_path):
    src = collection()
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(src))
    zones = ZoneSet.from_geojson(path, FRAME, densify_deg=None)
    back = zones.to_geojson(FRAME)
    for f_in, f_out in zip(src["features"], back["features"], strict=True):
        assert f_out["geometry"]["type"] == f_in["geometry"]["type"]
        c_in = np.array(f_in["geometry"]["coordinates"], dtype=object)
        flat_in = np.concatenate([np.asarray(r) for r in _rings(f_in["geometry"])])
        flat_out = np.concatenate([np.asarray(r) for r in _rings(f_out["geometry"])])
        assert c_in is not None
        # shapely may reorder ring vertices, so compare as sets of points.
        key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
        np.testing.assert_allclose(key(flat_out), key(flat_in), atol=1e-9)
        assert f_out["properties"]["name"] == f_in["properties"]["name"]
    again = ZoneSet.from_geojson(back, FRAME, densify_deg=None)
    assert again["zone-a"].geometry.equals_exact(zones["zone-a"].geometry, 1e-6)


def _rings(geometry):
    if geometry["type"] == "Polygon":
        return geometry["coordinates"]
    return [r for poly in geometry["coordinates"] for r in poly]


def test_long_lonlat_edges_are_densified():
    # A 0.5 deg east-west edge: straight in lon/lat (RFC 7946) bows in the local frame.
    coords = [[[32.75, 35.1], [33.25, 35.1], [33.25, 35.2], [32.75, 35.2], [32.75, 35.1]]]
    geo = {
        "type": "FeatureCollection",
        "features": [feature("z", {"type": "Polygon", "coordinates": coords})],
    }
    dense = ZoneSet.from_geojson(geo, FRAME)["z"]
    sparse = ZoneSet.from_geojson(geo, FRAME, densify_deg=None)["z"]
    mid = FRAME.to_local(np.array([[33.0, 35.1]]))
    assert dense.distance(mid)[0] < 1e-6 < sparse.distance(mid)[0]


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"type": "Point", "coordinates": [33, 35]}, "not Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[33, 35], [33.1, 35], [33, 35]]]}, "at least 4"),
        (
            {"type": "Polygon", "coordinates": [[[33, 35], [33.1, 35], [33, 95], [33, 35]]]},
            "outside lon",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [[[33, 35], [33.1, 35.1], [33.1, 35], [33, 35.1], [33, 35]]],
            },
            "invalid geometry",
        ),
    ],
)
def test_bad_geojson_names_the_feature(geometry, message):
    geo = {"type": "FeatureCollection", "features": [feature("bad-zone", geometry)]}
    with pytest.raises(ZoneError, match=message) as info:
        ZoneSet.from_geojson(geo, FRAME)
    assert "bad-zone" in str(info.value)


def test_zone_names_must_be_topic_safe_and_unique():
    shell = np.array([[0, 0], [10, 0], [10, 10], [0, 10]])
    with pytest.raises(ZoneError, match="name"):
        Zone.from_local("zone.a", shell)
    with pytest.raises(ZoneError, match="duplicate"):
        ZoneSet([Zone.from_local("z", shell), Zone.from_local("z", shell)])


def random_cov(rng, n, s_min=5.0, s_max=40.0):
    angle = rng.uniform(0, np.pi, n)
    s = rng.uniform(s_min, s_max, (n, 2))
    R = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], axis=1).reshape(
        n, 2, 2
    )
    return R @ (s[:, :, None] ** 2 * np.eye(2)) @ R.transpose(0, 2, 1)


def monte_carlo(zone, pos, P, rng, samples):
    out = np.empty(len(pos))
    for i in range(len(pos)):
        draws = rng.multivariate_normal(pos[i], P[i], samples)
        out[i] = zone.contains(draws).mean()
    return out


def test_probability_inside_matches_monte_carlo_along_straight_edges():
    rng = np.random.default_rng(2024)
    zone = Zone.from_local(
        "wide", np.array([[-5000, -1000], [5000, -1000], [5000, 1000], [-5000, 1000]])
    )
    n = 40
    # Points within +-60 m of the northern edge, away from the corners.
    pos = np.stack([rng.uniform(-3000, 3000, n), 1000 + rng.uniform(-60, 60, n)], axis=1)
    P = random_cov(rng, n)
    p = zone.probability_inside(pos, P)
    mc = monte_carlo(zone, pos, P, rng, 40_000)  # standard error <= 0.0025
    assert np.abs(p - mc).max() < 0.01
    assert p.min() < 0.1 and p.max() > 0.9  # the cases span the whole range


def test_probability_inside_near_a_convex_corner_is_a_bounded_overestimate():
    rng = np.random.default_rng(99)
    zone = Zone.from_local("box", np.array([[0, 0], [1000, 0], [1000, 1000], [0, 1000]]))
    pos = np.array([[10.0, 10.0], [-10.0, -10.0], [30.0, 5.0], [5.0, -20.0]])
    P = np.tile(np.eye(2) * 20.0**2, (4, 1, 1))
    p = zone.probability_inside(pos, P)
    mc = monte_carlo(zone, pos, P, rng, 40_000)
    # The half-plane ignores the second edge, so it can only over-estimate here,
    # and by at most the probability mass beyond that edge.
    assert (p >= mc - 0.01).all()
    assert np.abs(p - mc).max() < 0.35


def test_probability_inside_far_and_degenerate():
    zone = Zone.from_local("z", np.array([[0, 0], [100, 0], [100, 100], [0, 100]]))
    pos = np.array([[50, 50], [5000, 5000], [50, 100], [50, 99]], float)
    P = np.tile(np.eye(2) * 25.0, (4, 1, 1))
    P[3] = 0.0
    p = zone.probability_inside(pos, P)
    np.testing.assert_allclose(p, [1.0, 0.0, 0.5, 1.0], atol=1e-12)
    assert zone.probability_inside(np.zeros((0, 2)), np.zeros((0, 2, 2))).shape == (0,)


def test_time_to_breach_hand_cases():
    zone = Zone.from_local(
        "z",
        np.array([[0, 0], [100, 0], [100, 100], [0, 100]]),
        holes=[np.array([[40, 40], [60, 40], [60, 60], [40, 60]])],
    )
    pos = np.array(
        [
            [-50, 50],  # heading east at 10 m/s: 50 m to go -> 5 s
            [-50, 50],  # heading west: never
            [50, 150],  # moving east, parallel to the top edge: never
            [-500, 50],  # heading east, but 50 s away: beyond a 30 s horizon
            [10, 10],  # inside: 0
            [50, 50],  # in the hole, heading north at 2 m/s: 10 m to the hole's edge -> 5 s
            [-30, -40],  # diagonal towards the corner (0, 0)... passes through (0, 0)? no: (30, 0)
            [-50, 50],  # stationary outside: never
        ],
        float,
    )
    vel = np.array([[10, 0], [-10, 0], [5, 0], [10, 0], [0, 0], [0, 2], [3, 4], [0, 0]], float)
    ttb = zone.time_to_breach(pos, vel, 30.0)
    np.testing.assert_allclose(ttb[[0, 4, 5]], [5.0, 0.0, 5.0])
    assert np.isinf(ttb[[1, 2, 3, 7]]).all()
    # (-30, -40) + t (3, 4): reaches y = 0 at t = 10, at x = 0: the corner.
    assert ttb[6] == pytest.approx(10.0)
    # The horizon may differ per track.
    np.testing.assert_allclose(zone.time_to_breach(pos[:1], vel[:1], np.array([4.0])), [np.inf])


def test_sides_of_strips_and_their_names():
    ew = Zone.from_local("ew", np.array([[-1000, -100], [1000, -100], [1000, 100], [-1000, 100]]))
    assert ew.sides == ("north", "south")
    pts = np.array([[0, 500], [0, -500], [900, 150], [-900, -150], [0, 50], [0, -50]], float)
    np.testing.assert_array_equal(ew.side(pts), [1, -1, 1, -1, 1, -1])
    ns = Zone.from_local(
        "ns",
        np.array([[-50, -1000], [50, -1000], [50, 1000], [-50, 1000]]),
        side_names=["blue", "red"],
    )
    assert ns.compass_sides == ("east", "west") and ns.sides == ("blue", "red")
    np.testing.assert_array_equal(ns.side(np.array([[300, 0], [-300, 0]], float)), [1, -1])
    assert ns.side_name(1) == "blue" and ns.side_name(-1) == "red" and ns.side_name(0) is None
    with pytest.raises(ZoneError, match="side_names"):
        Zone.from_local(
            "bad", np.array([[0, 0], [10, 0], [10, 1], [0, 1]]), side_names={"east": "x"}
        )


def test_sides_follow_a_bent_strip():
    # A chevron: up and to the right, then down to the right (a 'roof' 100 m thick).
    top = np.array([[-2000, 0], [0, 1000], [2000, 0]], float)
    shell = np.vstack([top, top[::-1] - [0, 100]])
    zone = Zone.from_local("roof", shell)
    assert zone.sides == ("north", "south")
    # Just above and below each arm, including points north of the axis line on the
    # south side (under the roof's peak) which a straight axis would get wrong.
    above = np.array([[-1000, 700], [1000, 700], [0, 1200]], float)
    below = np.array([[-1000, 300], [1000, 300], [0, 800]], float)
    np.testing.assert_array_equal(zone.side(above), [1, 1, 1])
    np.testing.assert_array_equal(zone.side(below), [-1, -1, -1])


def test_time_to_breach_matches_shapely_on_random_paths():
    import shapely

    from fusion.alerting.zones import Zone

    shell = np.array([[0, 0], [4000, -300], [8000, 200], [8000, 1500], [3000, 1800], [0, 1200.0]])
    hole = np.array([[3000, 500], [4000, 500], [4000, 900], [3000, 900.0]])
    zone = Zone.from_local("z", shell, holes=[hole])
    rng = np.random.default_rng(12)
    pos = rng.uniform([-3000, -3000], [11000, 4500], size=(400, 2))
    vel = rng.normal(scale=15.0, size=(400, 2))
    horizon = 120.0
    ttb = zone.time_to_breach(pos, vel, horizon)
    # reference: shapely's intersection of the path with the zone, nearest point first
    path = shapely.linestrings(np.stack([pos, pos + vel * horizon], axis=1))
    hit = shapely.intersection(path, zone.geometry)
    d = np.asarray(shapely.distance(shapely.points(pos), hit), dtype=float)
    inside = zone.contains(pos)
    expected = np.where(inside, 0.0, np.where(np.isfinite(d), d / np.hypot(*vel.T), np.inf))
    assert np.isfinite(expected).sum() > 50
    np.testing.assert_allclose(ttb, expected, rtol=1e-9, atol=1e-6)
