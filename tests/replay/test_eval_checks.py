"""What ``eval`` refuses or warns about (issue 16, point 8), and the report page (point 9)."""

from __future__ import annotations

import matplotlib.text
import numpy as np
import pytest

from fusion.alerting.zones import ZoneSet
from fusion.messages import pack_map
from replay.cli import main
from replay.offline import encode_tracks, replay_offline
from replay.recording import RecordingWriter, read_recording
from replay.scenario_meta import scenario_metadata
from replay.scoring.evaluate import evaluate, read_result
from replay.scoring.report import _TRACK_FALSE, _TRACK_OK, report_figure
from sensors.scenario import Scenario
from sensors.truth import encode_truth
from tests.replay.clihelp import TINY, assert_refused, run_cli

# The tiny scenario somewhere else: another name, another seed, the zone 2 km east.
OTHER = (
    TINY.replace('name = "tiny"', 'name = "other"')
    .replace("seed = 5", "seed = 6")
    .replace(
        "local = [[-3000.0, -300.0], [3000.0, -300.0], [3000.0, 300.0], [-3000.0, 300.0]]",
        "local = [[-1000.0, 1700.0], [3900.0, 1700.0], [3900.0, 2300.0], [-1000.0, 2300.0]]",
    )
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A simulated recording of the tiny scenario and its offline result."""
    d = tmp_path_factory.mktemp("eval")
    (d / "tiny.toml").write_text(TINY)
    (d / "other.toml").write_text(OTHER)
    assert main(["simulate", str(d / "tiny.toml"), "--out", str(d / "t.bzrec")]) == 0
    assert main(["simulate", str(d / "other.toml"), "--out", str(d / "o.bzrec")]) == 0
    assert main(["replay", str(d / "t.bzrec"), "--offline", "--out", str(d / "t.bzres")]) == 0
    return d


def test_an_offline_replay_that_hit_a_bug_fails_loudly(files, tmp_path, monkeypatch, capsys):
    # The service counts an internal error and goes on; an offline run must not hand
    # back a plausible result that silently lacks the batches that failed.
    from fusion.tracking.tracker import Tracker

    calls = {"n": 0}
    process = Tracker.process

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] % 50 == 0:
            raise NameError("a typo in the tracker")
        return process(self, batch)

    monkeypatch.setattr(Tracker, "process", flaky)
    out = tmp_path / "bug.bzres"
    assert main(["replay", str(files / "t.bzrec"), "--offline", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "hit an internal error" in err and "not a fair result" in err


def test_eval_on_a_recording_says_to_replay_it_first(files):
    proc = run_cli("eval", "t.bzrec", cwd=files)
    assert_refused(proc, "t.bzrec is a recording, not a result",
                   "bufferzone replay t.bzrec --offline")


def test_a_partial_result_is_refused_unless_asked_for(files, tmp_path):
    # A replay cut short: its result file ends mid-frame and has no final status.
    whole = (files / "t.bzres").read_bytes()
    cut = tmp_path / "cut.bzres"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    proc = run_cli("eval", str(cut), cwd=tmp_path)
    assert_refused(proc, "is incomplete", "--partial")
    # Said once, as a sentence: not also as Python's warning with a source line.
    assert "RecordingWarning" not in proc.stderr and "for frame in" not in proc.stderr
    proc = run_cli("eval", str(cut), "--partial", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "warning:" in proc.stderr and "GOSPA" in proc.stdout
    assert "RecordingWarning" not in proc.stderr


def test_an_interrupted_offline_replay_says_its_result_is_partial(files, tmp_path,
                                                                  monkeypatch, capsys):
    import replay.offline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(replay.offline, "replay_offline", interrupted)
    out = tmp_path / "i.bzres"
    assert main(["replay", str(files / "t.bzrec"), "--offline", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and f"{out} holds only part of" in err and "--partial" in err


def test_a_cut_off_truth_recording_is_one_warning_line(files, tmp_path):
    whole = (files / "t.bzrec").read_bytes()
    (tmp_path / "cut.bzrec").write_bytes(whole[: len(whole) - 100])
    proc = run_cli("eval", str(files / "t.bzres"), "--truth", "cut.bzrec", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bufferzone eval: warning: --truth cut.bzrec: truncated after" in proc.stderr
    assert "RecordingWarning" not in proc.stderr


def test_a_result_of_a_truncated_recording_is_refused(files, tmp_path):
    whole = (files / "t.bzrec").read_bytes()
    rec = tmp_path / "cut.bzrec"
    rec.write_bytes(whole[: len(whole) // 2])
    proc = run_cli("replay", str(rec), "--offline", "--out", "cut.bzres", cwd=tmp_path)
    assert proc.returncode == 1 and "'eval' refuses it" in proc.stderr
    proc = run_cli("eval", "cut.bzres", cwd=tmp_path)
    assert_refused(proc, "its recording was not read to the end")


def test_truth_from_another_scenario_is_warned_about(files, tmp_path):
    proc = run_cli("eval", str(files / "t.bzres"), "--truth", str(files / "o.bzrec"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "is from scenario 'other', this result from 'tiny'" in proc.stderr
    assert "WARNING: only" in proc.stdout  # and the tracks do not line up with it


def test_incursions_into_zones_the_replay_did_not_have_are_warned_about(files, tmp_path):
    # Replayed with other zones (--zones): the truth's incursions are into a zone the
    # rules never knew, so every one would score as missed without a word.
    tiny = Scenario.loads(TINY, source="tiny")
    doc = tiny.zones_geojson()
    for feature in doc["features"]:
        feature["properties"]["name"] = "renamed"
        feature.pop("id", None)
    zones = (ZoneSet.from_geojson(doc, tiny.frame), tiny.frame)
    replay_offline(files / "t.bzrec", tmp_path / "z.bzres", zones=zones, show_progress=False)
    proc = run_cli("eval", "z.bzres", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "which this result's rules did not have (they ran on renamed" in proc.stdout
    same = run_cli("eval", str(files / "t.bzres"), cwd=tmp_path)
    assert same.returncode == 0 and "rules did not have" not in same.stdout


def test_truth_for_a_live_recording_without_a_scenario_is_warned_about(files, tmp_path):
    # A live recording made without --scenario: no name, no zones, no truth frames.
    tiny = Scenario.loads(TINY, source="tiny")
    rec = tmp_path / "live.bzrec"
    with RecordingWriter(rec, {"kind": "recording", "writer": "test"}, t_start=0.0) as w:
        for f in read_recording(files / "t.bzrec").frames:
            if not f.topic.startswith(b"truth."):
                w.write(f.t_recv, f.topic, f.payload)
    zones = (ZoneSet.from_geojson(tiny.zones_geojson(), tiny.frame), tiny.frame)
    replay_offline(rec, tmp_path / "live.bzres", zones=zones, show_progress=False)
    proc = run_cli("eval", "live.bzres", "--truth", str(files / "o.bzrec"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "names no scenario" in proc.stderr
    assert "WARNING: only" in proc.stdout


def _hand_made_result(path, tiny: Scenario, east_2: float = 1000.0) -> None:
    """Targets 1 (south to north at x=0) and 2 (north to south at x=``east_2``) both
    enter zone-t at t=5. Track 10 sits on target 1; track 20 sits far from everything. One
    incursion alert on track 10 at t=7 (true) and one on track 20 at t=8 (false);
    target 2 is never alerted (missed)."""
    meta = scenario_metadata(tiny)
    meta["incursions"] = [
        {"target": k, "zone": "zone-t", "t_enter": 5.0, "t_exit": None, "side": side,
         "cls": "person"}
        for k, side in ((1, "south"), (2, "north"))
    ]
    with RecordingWriter(
        path, {"kind": "result", "tracker": "hand", "scenario": meta}, t_start=0.0
    ) as w:
        for t in np.arange(0.0, 11.0):
            x_truth = np.array(
                [[0.0, -400.0 + 20 * t, 0.0, 20.0], [east_2, 400.0 - 20 * t, 0.0, -20.0]]
            )
            w.write(t, b"truth.tiny",
                    encode_truth(t, np.array([1, 2]), x_truth, np.array([1, 1], np.uint8)))
            x_tracks = np.array([x_truth[0], [-2000.0, 2000.0, 0.0, 0.0]])
            w.write(t, b"track.update",
                    encode_tracks(t, np.array([10, 20]), x_tracks, np.tile(np.eye(4), (2, 1, 1))))
        for tid, t in ((10, 7.0), (20, 8.0)):
            event = {
                "type": "alert", "alert_id": f"zone-t:incursion:{tid}:0", "kind": "incursion",
                "event": "open", "zone": "zone-t", "track_id": tid, "t": t,
                "position": {"east": 0.0, "north": 0.0},
            }
            w.write(t, b"alert.zone-t.incursion", pack_map(event))


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_report_page_carries_what_an_analyst_needs(tmp_path):
    tiny = Scenario.loads(TINY, source="tiny")
    path = tmp_path / "hand.bzres"
    _hand_made_result(path, tiny)
    ev = evaluate(read_result(path, show_progress=False), c=40.0, end_grace=0.0)
    fig = report_figure(ev)
    try:
        text = _texts(fig)
        assert "longitude (°E, WGS84)" in text and "latitude (°N, WGS84)" in text
        assert "east of origin (m)" in text
        # Target 2 entered at t=5 and no alert matched it: marked on the map.
        assert "MISSED target 2" in text
        # Scores on the page, and the alert table with ids and open times.
        assert "recall" in text and "precision" in text and "0.500" in text
        assert "zone-t:incursion:10:0" in text or "   10    7.0s" in text
        assert "7.0s  true" in text and "8.0s  false" in text
        assert "How alerts were scored" in text
        # Track colours mean what the legend says: track 10 follows truth 1, track 20
        # never follows anything.
        map_ax = fig.axes[0]
        colours = {
            tuple(np.round(line.get_xydata()[0], 3)): line.get_color()
            for line in map_ax.get_lines()
            if line.get_color() in (_TRACK_OK, _TRACK_FALSE) and len(line.get_xydata()) > 1
        }
        assert colours[(0.0, -400.0)] == _TRACK_OK
        assert colours[(-2000.0, 2000.0)] == _TRACK_FALSE
        legend = [t.get_text() for t in map_ax.get_legend().get_texts()]
        assert "track following a truth" in legend and "false track (no truth)" in legend
        assert "incursion with no alert" in legend
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("east_2", [1000.0, 40000.0])
def test_report_legend_lies_between_the_map_labels_and_the_gospa_panel(tmp_path, east_2):
    # Truth 40 km wide gives a short map (as the default scenario's zone does), where a
    # legend placed a fraction of the map's height below it lay on the axis label; a
    # tall map must not push it into the GOSPA panel either.
    tiny = Scenario.loads(TINY, source="tiny")
    path = tmp_path / "hand.bzres"
    _hand_made_result(path, tiny, east_2)
    ev = evaluate(read_result(path, show_progress=False), c=40.0, end_grace=0.0)
    fig = report_figure(ev)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        map_ax = fig.axes[0]
        (gospa_ax,) = [ax for ax in fig.axes if ax.get_xlabel() == "time (s)"]
        legend = map_ax.get_legend().get_window_extent(renderer)
        xlabel = map_ax.xaxis.label.get_window_extent(renderer)
        assert legend.y1 <= xlabel.y0  # below the axis label (and so the tick labels)
        assert legend.y0 >= gospa_ax.title.get_window_extent(renderer).y1
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_report_labels_of_nearby_gospa_spikes_do_not_cover_each_other(tmp_path):
    # 900 s with one target, tracked except at three steps 62 s apart: three spikes
    # whose labels are wider than the gaps between them.
    tiny = Scenario.loads(TINY, source="tiny")
    path = tmp_path / "spikes.bzres"
    with RecordingWriter(path, {"kind": "result", "tracker": "hand",
                                "scenario": scenario_metadata(tiny)}, t_start=0.0) as w:
        x = np.array([[0.0, -1000.0, 0.0, 0.0]])
        for t in np.arange(0.0, 901.0):
            w.write(t, b"truth.tiny", encode_truth(t, np.array([1]), x, np.array([1], np.uint8)))
            ids = np.array([], np.int64) if t in (300.0, 362.0, 424.0) else np.array([10])
            w.write(t, b"track.update",
                    encode_tracks(t, ids, x[: len(ids)], np.tile(np.eye(4), (len(ids), 1, 1))))
    ev = evaluate(read_result(path, show_progress=False), c=40.0, end_grace=0.0)
    fig = report_figure(ev)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = [t for ax in fig.axes for t in ax.texts if t.get_text().startswith("t=")]
        assert sorted(t.get_text().split(" s:")[0] for t in labels) == [
            "t=300", "t=362", "t=424"]
        # The text's own box (an Annotation's extent also spans its arrow).
        boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in labels]
        for i, a in enumerate(boxes):
            assert all(not _overlap(a, b) for b in boxes[i + 1:])
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_report_draws_sensors_when_the_scenario_file_is_known(files, tmp_path):
    ev = evaluate(read_result(files / "t.bzres", show_progress=False))
    fig = report_figure(ev)
    try:
        text = _texts(fig)
        assert "radar-1" in text
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert "radar coverage" in legend
        # The GOSPA panel names the cause of its largest spike.
        assert any(w in text for w in ("truths without a track", "tracks on no truth",
                                       "position errors"))
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    png = tmp_path / "r.png"
    assert main(["eval", str(files / "t.bzres"), "--report", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
