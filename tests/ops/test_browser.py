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

from tests.ops.conftest import FRAME

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


def test_map_shows_zone_tracks_and_an_alert_within_two_seconds(page, ops_server,
                                                               fake_service, tmp_path):
    fake_service.wait_subscribers()
    page.goto(ops_server.url)
    page.wait_for_function("window.bz && window.bz.layersReady", timeout=10_000)
    assert page.evaluate("window.bz.layers.zones.getLayers().length") == 1
    assert page.locator(".leaflet-overlay-pane path").count() >= 2  # zone and coverage
    # a short feed: three tracks walking north towards the zone
    rng = np.random.default_rng(15)
    start = rng.uniform(-800, 800, size=(3, 2)) + [0.0, -900.0]
    for k in range(6):
        fake_service.status()
        fake_service.tracks(float(k), [1, 2, 3], (start + [0.0, 40.0 * k]).tolist(),
                            v=[[0.0, 4.0]] * 3, cls=[1, 2, 3])
        page.wait_for_function(f"window.bz.picture && window.bz.picture.t === {float(k)}",
                               timeout=10_000)
    assert page.evaluate("window.bz.picture.tracks.length") == 3
    assert page.locator("#track-count").inner_text() == "3"
    assert page.locator("#banner").get_attribute("data-state") == "live"
    # an alert: on the page within 2 s of its publication
    alert_id = "zone-a:incursion:2:0"
    published = time.monotonic()
    fake_service.alert(alert_id, en=(float(start[1, 0]), 200.0), track_id=2)
    item = page.locator(f'#alerts li[data-alert-id="{alert_id}"]')
    item.wait_for(timeout=2_000)
    assert time.monotonic() - published < 2.0
    assert "radar-1, drone-2" in item.inner_text()
    _shot(page, tmp_path, "ops-map.png")
    # a click zooms to it
    item.click()
    page.wait_for_function(f"window.bz.zoomedTo === {alert_id!r}", timeout=5_000)
    lon, lat = FRAME.to_lonlat(np.array([start[1, 0], 200.0]))
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
