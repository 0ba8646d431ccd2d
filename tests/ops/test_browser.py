"""The map page in a real headless browser (Chromium driven by Playwright).

It loads, draws the zone, shows tracks from a short feed, shows an alert within 2 s of
its publication, zooms to it on a click, and says loudly when the service goes silent.
Screenshots go to the test's temporary directory, and also to
``$BUFFERZONE_SCREENSHOT_DIR`` when set (that is how the README's pictures are made).

Chromium comes from Debian's packages (``apt-get install -y chromium``; ``.ci/run``
installs it). Without it the test is skipped and says why, unless
``BUFFERZONE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes a missing browser a failure.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from replay.ops.picture import OpsPicture
from tests.ops.conftest import ServerThread

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--no-first-run", "--disable-sync",
                 "--disable-component-update"]


def _chromium() -> str:
    why = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why = "Playwright is not installed (pip install -e '.[test]')"
    path = shutil.which("chromium") or ("/usr/bin/chromium"
                                         if os.path.exists("/usr/bin/chromium") else None)
    if why is None and path is None:
        why = "Chromium is not installed (apt-get install -y chromium; .ci/run does it)"
    if why is not None:
        if os.environ.get("BUFFERZONE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but cannot run: {why}")
        pytest.skip(why)
    return path  # type: ignore[return-value]


@pytest.fixture
def page():
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            yield page
        finally:
            browser.close()


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    out = os.environ.get("BUFFERZONE_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / name)
    return path


@pytest.fixture(scope="module")
def default_layers():
    """The embedded scenario's zone and 56 sensors: the map as a demo shows it."""
    from replay.ops.layers import Layers
    from sensors.scenario import load_default

    scenario = load_default()
    return Layers.from_scenario(scenario), scenario.zone("zone-a").local


@pytest.fixture
def map_server(fake_service, default_layers):
    layers, _ = default_layers
    fake_service.frame = layers.frame
    st = ServerThread(OpsPicture(layers, silence=1.0), fake_service.pub_endpoint,
                      fake_service.snap_endpoint, push_interval=0.2)
    yield st
    st.stop()


def test_map_shows_zone_tracks_and_an_alert_within_two_seconds(page, map_server, fake_service,
                                                               default_layers, tmp_path):
    ops_server = map_server
    layers, zone = default_layers
    fake_service.wait_subscribers()
    page.goto(ops_server.url)
    page.wait_for_function("window.bz && window.bz.layersReady", timeout=10_000)
    assert page.evaluate("window.bz.layers.zones.getLayers().length") == 1
    assert page.locator(".leaflet-overlay-pane path").count() >= 2  # zone and coverage
    # a short feed: tracks of every class walking north towards the zone's south edge
    rng = np.random.default_rng(15)
    n = 24
    south = float(zone[:, 1].min())
    start = np.column_stack([rng.uniform(zone[:, 0].min() + 2000, zone[:, 0].max() - 2000, n),
                             rng.uniform(south - 3000, south - 300, n)])
    v = np.column_stack([rng.normal(0, 2, n), rng.uniform(2, 8, n)])
    ids, cls = list(range(1, n + 1)), [int(c) for c in rng.integers(0, 4, n)]
    for k in range(6):
        fake_service.status()
        fake_service.tracks(float(k), ids, (start + 5.0 * k * v).tolist(), v=v.tolist(), cls=cls)
        page.wait_for_function(f"window.bz.picture && window.bz.picture.t === {float(k)}",
                               timeout=10_000)
    assert page.evaluate("window.bz.picture.tracks.length") == n
    # a radar goes silent: its marker is ringed red and its alert is listed
    fake_service.status(sensors_silent=["radar-n1"])
    fake_service.alert("silent-radar-n1-1", kind="sensor_silent", zone="sensors",
                       sensor="radar-n1", track_id=None, evidence=["radar-n1"])
    page.locator('#alerts li[data-alert-id="silent-radar-n1-1"]').wait_for(timeout=5_000)
    page.wait_for_function("sensorMarkers['radar-n1'].options.color === '#d00'",
                           timeout=5_000)
    assert page.locator("#track-count").inner_text() == str(n)
    assert page.locator("#banner").get_attribute("data-state") == "live"
    # an alert: on the page within 2 s of its publication
    alert_id = "zone-a:incursion:2:0"
    published = time.monotonic()
    where = (float(start[1, 0]), south + 150.0)
    fake_service.alert(alert_id, en=where, track_id=2)
    item = page.locator(f'#alerts li[data-alert-id="{alert_id}"]')
    item.wait_for(timeout=2_000)
    assert time.monotonic() - published < 2.0
    assert "radar-1, drone-2" in item.inner_text()
    _shot(page, tmp_path, "ops-map.png")
    # a click zooms to it
    item.click()
    page.wait_for_function(f"window.bz.zoomedTo === {alert_id!r}", timeout=5_000)
    lon, lat = layers.frame.to_lonlat(np.array(where))
    page.wait_for_function(
        f"Math.abs(map.getCenter().lat - {lat}) < 1e-3 && Math.abs(map.getCenter().lng - {lon})"
        " < 1e-3", timeout=5_000)
    _shot(page, tmp_path, "ops-map-alert.png")
    # the service goes quiet (1 s silence limit in this fixture): the page says so
    page.wait_for_function(
        "document.getElementById('banner').dataset.state === 'silent'", timeout=10_000)
    assert "SERVICE SILENT" in page.locator("#banner").inner_text()
    _shot(page, tmp_path, "ops-map-silent.png")
    assert (tmp_path / "ops-map.png").stat().st_size > 10_000
