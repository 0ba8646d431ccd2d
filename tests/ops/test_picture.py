"""The picture's own clock: taken from the service's stamps, not stamped again here."""

from __future__ import annotations

import numpy as np

from fusion.messages import unpack_map
from fusion.service.stamps import Stamper, iso_utc
from replay.offline import encode_tracks
from replay.ops.picture import OpsPicture
from tests.ops.conftest import FRAME, make_layers


def _track_update(t: float, stamper: Stamper | None) -> dict:
    x = np.array([[0.0, 500.0, 1.0, 2.0]])
    msg = unpack_map(encode_tracks(t, np.array([4]), x, np.eye(4)[None], np.array([1], "u1")))
    return msg if stamper is None else stamper.stamp_tracks(msg)


def test_picture_time_is_the_services_stamp_of_the_track_picture():
    """A service places scenario seconds on the wall clock at its own first message; a
    map started later (or a demo at 8x) must show that time, the one the alerts carry,
    not one it makes up from its own start (it did: the clock read 6 min past the
    alerts' times in a demo)."""
    service = Stamper(FRAME, epoch0=1_796_200_000.0)  # the service's scenario time 0
    pic = OpsPicture(make_layers())
    msg = _track_update(450.0, service)
    pic.on_message(b"track.update", msg)
    out = pic.to_json()
    assert out["t"] == 450.0
    assert out["t_epoch"] == msg["t_epoch"] == 1_796_200_450.0
    assert out["time_utc"] == msg["time_utc"] == iso_utc(1_796_200_450.0)
    assert out["time_basis"] == "scenario"
    assert out["tracks"][0]["time_utc"] == out["time_utc"]
    lon, lat = FRAME.to_lonlat(np.array([0.0, 500.0]))
    assert abs(out["tracks"][0]["lon"] - lon) < 1e-9 and abs(out["tracks"][0]["lat"] - lat) < 1e-9


def test_unstamped_pictures_are_stamped_here_consistently():
    """An older service sends no stamps: the picture stamps them once, the same way for
    the picture's clock and its tracks."""
    pic = OpsPicture(make_layers())
    pic.on_message(b"track.update", _track_update(10.0, None))
    first = pic.to_json()
    assert first["time_utc"].endswith("Z") and first["time_basis"] == "scenario"
    assert first["tracks"][0]["time_utc"] == first["time_utc"]
    pic.on_message(b"track.update", _track_update(12.5, None))
    assert pic.to_json()["t_epoch"] - first["t_epoch"] == 2.5
    assert OpsPicture(make_layers()).to_json()["time_utc"] is None  # nothing yet
