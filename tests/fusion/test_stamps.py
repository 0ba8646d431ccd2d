"""UTC time and lon/lat stamps on alert events and track pictures."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from fusion.geo import LocalFrame
from fusion.messages import pack_map, unpack_map
from fusion.service.stamps import EPOCH_FLOOR, Stamper, iso_utc

FRAME = LocalFrame(33.0, 35.0)


def test_iso_utc_is_iso8601_with_z_and_round_trips():
    s = iso_utc(1_764_644_400.25)
    assert s == "2025-12-02T03:00:00.250Z"
    assert datetime.fromisoformat(s).timestamp() == pytest.approx(1_764_644_400.25)


def test_epoch_times_pass_through_and_scenario_times_anchor_once():
    st = Stamper(FRAME, wall=lambda: 2_000_000_000.0)
    assert st.epoch(1_800_000_000.5) == 1_800_000_000.5
    assert st.times(1_800_000_000.5)["time_basis"] == "utc"
    assert st.epoch(10.0) == 2_000_000_000.0  # the first scenario time is "now"
    assert st.epoch(25.0) == 2_000_000_015.0  # later ones keep their spacing
    assert st.times(25.0)["time_basis"] == "scenario"
    assert st.epoch(None) is None and st.epoch(float("-inf")) is None
    assert Stamper(epoch0=100.0).epoch(5.0) == 105.0
    assert EPOCH_FLOOR < 1.8e9


def test_stamp_alert_adds_time_and_fills_lonlat():
    st = Stamper(FRAME, epoch0=1_764_644_400.0)
    ev = {"t": 12.5, "position": {"east": 1000.0, "north": -500.0, "lon": None, "lat": None}}
    st.stamp_alert(ev)
    assert ev["t_epoch"] == 1_764_644_412.5
    assert ev["time_utc"] == "2025-12-02T03:00:12.500Z"
    lon, lat = FRAME.to_lonlat(np.array([1000.0, -500.0]))
    assert ev["position"]["lon"] == pytest.approx(lon)
    assert ev["position"]["lat"] == pytest.approx(lat)
    # a position that already has lon/lat is left as it is
    ev2 = {"t": 1.0, "position": {"east": 0.0, "north": 0.0, "lon": 1.0, "lat": 2.0}}
    assert st.stamp_alert(ev2)["position"]["lon"] == 1.0


def test_stamp_tracks_adds_a_lonlat_column_that_survives_the_wire():
    st = Stamper(FRAME, epoch0=1_764_644_400.0)
    x = np.array([[0.0, 0.0, 1.0, 0.0], [2000.0, 3000.0, 0.0, -1.0]])
    msg = {"type": "tracks", "t": 3.0, "n": 2, "x": x.astype("<f8").tobytes()}
    back = unpack_map(pack_map(st.stamp_tracks(msg)))
    lonlat = np.frombuffer(back["lonlat"], dtype="<f8").reshape(2, 2)
    assert np.allclose(lonlat, FRAME.to_lonlat(x[:, :2]))
    assert lonlat[0] == pytest.approx([33.0, 35.0])
    assert back["time_utc"] == "2025-12-02T03:00:03.000Z"
    empty = st.stamp_tracks({"type": "tracks", "t": None, "n": 0, "x": b""})
    assert empty["lonlat"] == b"" and empty["t_epoch"] is None
