"""docs/SCENARIOS.md and examples/ (issue 16, point 7): every key documented, the worked
example runs, sensor positions in lon/lat, and the example --config loads."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from fusion.geo import LocalFrame
from fusion.service import ServiceConfig
from fusion.service.liveness import LivenessConfig
from fusion.tracking.tracker import TrackerConfig
from sensors import scenario as scenario_module
from sensors.scenario import Scenario, ScenarioError, TargetGroup
from tests.replay.clihelp import REPO

DOC = (REPO / "docs" / "SCENARIOS.md").read_text(encoding="utf-8")
EXAMPLE = REPO / "examples" / "scenario-lonlat.toml"


def test_every_scenario_key_is_documented():
    keys = set(scenario_module._TOP_KEYS) | set(scenario_module._ZONE_KEYS)
    keys |= {f.name for f in dataclasses.fields(TargetGroup)}
    keys |= set(scenario_module._ANY_SENSOR_KEYS)
    keys |= set(scenario_module._SWATH_KEYS) | set(scenario_module._RACETRACK_KEYS)
    documented = set(re.findall(r"`([a-z_]+)`", DOC))
    assert sorted(keys - documented) == []
    for behaviour in scenario_module.BEHAVIOURS:
        assert f"`{behaviour}`" in DOC


def test_the_worked_example_in_the_doc_loads():
    block = re.search(r"```toml\n(.*?)```", DOC, re.S).group(1)
    scenario = Scenario.loads(block, source="doc")
    assert scenario.origin == (33.37, 35.17)
    radar = scenario.sensors[0]
    frame = LocalFrame(33.37, 35.17)
    np.testing.assert_allclose(radar.position, frame.to_local(np.array([33.370, 35.1500])))
    assert -2300 < radar.position[1] < -2100  # about 2 km south, as the comment says


def test_example_scenario_in_lonlat_equals_the_same_in_metres():
    lonlat = Scenario.load(EXAMPLE)
    frame = lonlat.frame
    text = EXAMPLE.read_text()
    # The same sensors written in local metres give the same specs.
    for key, (lon, lat) in (("position_lonlat = [33.370, 35.1500]", (33.370, 35.1500)),):
        e, n = frame.to_local(np.array([lon, lat]))
        text = text.replace(key, f"position = [{float(e)!r}, {float(n)!r}]")
    c_e, c_n = frame.to_local(np.array([33.370, 35.1700]))
    text = text.replace(
        "center_lonlat = [33.370, 35.1700]", f"center = [{float(c_e)!r}, {float(c_n)!r}]"
    )
    (a_e, a_n), (b_e, b_n) = frame.to_local(np.array([[33.340, 35.1725], [33.400, 35.1725]]))
    text = text.replace(
        "line_lonlat = [[33.340, 35.1725], [33.400, 35.1725]]",
        f"line = [[{float(a_e)!r}, {float(a_n)!r}], [{float(b_e)!r}, {float(b_n)!r}]]",
    )
    assert "_lonlat" not in text
    metres = Scenario.loads(text, source="metres")
    assert len(metres.sensors) == len(lonlat.sensors) == 14  # radar, drone, 12 UGS
    for a, b in zip(lonlat.sensors, metres.sensors, strict=True):
        assert a.id == b.id
        for field in ("position", "route"):
            if hasattr(a, field):
                np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=1e-6)


def test_swapped_or_doubled_sensor_points_are_refused():
    text = EXAMPLE.read_text()
    with pytest.raises(ScenarioError, match="did you swap lat/lon"):
        Scenario.loads(text.replace("[33.370, 35.1500]", "[35.1500, 33.370]"))
    with pytest.raises(ScenarioError, match="give position or position_lonlat, not both"):
        Scenario.loads(text.replace("position_lonlat = [33.370, 35.1500]",
                                    "position_lonlat = [33.370, 35.1500]\nposition = [0.0, 0.0]"))
    with pytest.raises(ScenarioError, match="did you swap lat/lon"):
        Scenario.loads(text.replace("[33.337, 35.1684]", "[35.1684, 33.337]")
                       .replace("[33.370, 35.1681]", "[35.1681, 33.370]")
                       .replace("[33.403, 35.1684]", "[35.1684, 33.403]")
                       .replace("[33.403, 35.1716]", "[35.1716, 33.403]")
                       .replace("[33.370, 35.1719]", "[35.1719, 33.370]")
                       .replace("[33.337, 35.1716]", "[35.1716, 33.337]"))


def test_example_config_holds_every_setting_at_its_default():
    path = REPO / "examples" / "service.toml"
    service = ServiceConfig.from_toml(path)
    tracker = TrackerConfig.from_toml(path)
    assert tracker == TrackerConfig()
    assert LivenessConfig.from_toml(str(path)) == LivenessConfig()
    assert service == dataclasses.replace(ServiceConfig(), det_bind=("tcp://127.0.0.1:5556",))
    text = path.read_text()
    for f in (*dataclasses.fields(ServiceConfig), *dataclasses.fields(TrackerConfig),
              *dataclasses.fields(LivenessConfig)):
        assert re.search(rf"^{f.name} = ", text, re.M), f"{f.name} missing from the example"


@pytest.mark.slow
def test_the_worked_example_runs_as_the_doc_says(tmp_path):
    # docs/SCENARIOS.md: simulate, replay --offline, eval --report, as written.
    import shlex
    import shutil

    from tests.replay.clihelp import run_cli

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    block = re.search(r"Run it end to end, with no sockets:\n\n```\n(.*?)```", DOC, re.S)
    lines = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    assert [argv[1] for argv in lines] == ["simulate", "replay", "eval"]
    for argv in lines:
        proc = run_cli(*argv[1:], cwd=tmp_path, timeout=120.0)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert (tmp_path / "lonlat.png").read_bytes()[:4] == b"\x89PNG"
