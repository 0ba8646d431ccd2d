"""record / replay / simulate / eval: live recording over real sockets, deterministic
offline replay, truncated recordings, publishing a recording, and eval on a hand-made
case with a known answer."""

from __future__ import annotations

import json
import threading
import warnings

import msgpack
import numpy as np
import pytest
import zmq

from fusion.messages import pack_map
from replay.cli import main
from replay.offline import decode_tracks, encode_tracks, replay_offline
from replay.player import play
from replay.record import record, write_simulation
from replay.recording import RecordingWarning, RecordingWriter, read_recording
from replay.scenario_meta import scenario_metadata
from replay.scoring.evaluate import evaluate, read_result
from sensors.feed import iter_messages
from sensors.publisher import publish
from sensors.scenario import Scenario
from sensors.truth import encode_truth, simulate_truth
from tests.scenarios import TINY

# Every receive and join in this file is bounded by this many seconds.
TIMEOUT = 60.0
# Publishers close with a linger so that what the subscriber has not read yet still
# reaches it (linger 0 would drop the tail of an as-fast-as-possible feed).


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return Scenario.loads(TINY, source="tiny")


@pytest.fixture(scope="module")
def simulated(tiny, tmp_path_factory):
    """The tiny scenario written by the simulator (with truth and incursions)."""
    path = tmp_path_factory.mktemp("sim") / "tiny.bzrec"
    write_simulation(tiny, path, show_progress=False)
    return path


def _records_equal(a, b) -> None:
    assert a.read_bytes() == b.read_bytes()


def test_live_recording_replays_offline_identically(tiny, tmp_path, context, ipc_endpoint):
    truth = simulate_truth(tiny)
    messages = list(iter_messages(tiny, truth, include_truth=True))
    endpoint = ipc_endpoint("feed")
    out = tmp_path / "live.bzrec"
    bound, stop = threading.Event(), threading.Event()
    published: dict = {}

    def sensors() -> None:
        published["stats"] = publish(
            context,
            messages,
            endpoint,
            speed=None,
            stop=stop,
            wait_timeout=TIMEOUT,
            linger_ms=5000,
            ready=bound,
        )

    pub = threading.Thread(target=sensors)
    pub.start()
    try:
        assert bound.wait(TIMEOUT)
        stats = record(
            context,
            [endpoint],
            out,
            metadata={"scenario": scenario_metadata(tiny)},
            stop=stop,
            max_messages=len(messages),
            duration=TIMEOUT,
        )
    finally:
        stop.set()
        pub.join(TIMEOUT)
    assert not pub.is_alive()
    assert stats.ended == "count"
    rec = read_recording(out)
    assert rec.report.complete
    assert [(f.topic, f.payload) for f in rec.frames] == [(m[1], m[2]) for m in messages]
    assert np.all(np.diff(rec.t_recv) >= 0)
    assert rec.metadata["scenario"]["name"] == "tiny"

    r1, r2 = tmp_path / "r1.bzres", tmp_path / "r2.bzres"
    s1 = replay_offline(out, r1, show_progress=False)
    s2 = replay_offline(out, r2, show_progress=False)
    _records_equal(r1, r2)
    assert s1.steps == s2.steps > 50
    assert s1.alerts == s2.alerts > 0
    result = read_result(r1, show_progress=False)
    assert len(result.pictures) == s1.steps
    assert {a["kind"] for a in result.alerts} >= {"incursion"}
    assert all(a["run"] == "offline" for a in result.alerts)


def test_offline_replay_of_a_simulation_scores_the_crossing(simulated, tmp_path):
    result_path = tmp_path / "r.bzres"
    summary = replay_offline(simulated, result_path, show_progress=False)
    assert summary.report is not None and summary.report.complete
    ev = evaluate(read_result(result_path, show_progress=False))
    inc = ev.summary["alerts"]["incursion"]
    assert inc["n_truth"] == 1 and inc["recall"] == 1.0 and inc["n_false"] == 0
    assert 0 < inc["latency_median"] < 10
    assert ev.summary["gospa"]["mean"]["distance"] < 100


def test_truncated_recording_replays_up_to_the_cut(simulated, tmp_path, capsys):
    data = simulated.read_bytes()
    cut = tmp_path / "cut.bzrec"
    cut.write_bytes(data[: len(data) * 2 // 3])
    whole = read_recording(simulated)
    with pytest.warns(RecordingWarning, match="truncated"):
        summary = replay_offline(cut, tmp_path / "r.bzres", show_progress=False)
    report = summary.report
    assert report is not None and report.status == "truncated"
    assert 0 < report.frames < len(whole)
    assert summary.frames == report.frames
    # Every whole frame before the cut is the same as in the full recording.
    frames_before = whole.frames[: report.frames]
    assert report.end_offset == whole.header.size + sum(
        len(f.topic) + len(f.payload) + 18 for f in frames_before
    )
    status = read_result(tmp_path / "r.bzres", show_progress=False).status
    assert status["source_report"]["status"] == "truncated"
    assert status["source_report"]["frames"] == report.frames
    # And the command line says where it stopped, once and as a sentence (not also as
    # Python's warning), with a non-zero exit status.
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecordingWarning)
        rc = main(["replay", str(cut), "--offline", "--out", str(tmp_path / "c.bzres")])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{cut}: truncated after {report.frames} whole frames" in err
    assert f"{cut}: {cut}:" not in err and "covers only the readable part" in err


def test_cli_simulate_replay_eval_and_baseline(tiny, tmp_path, capsys, scenario_file):
    toml = scenario_file("tiny")
    rec, res, base = tmp_path / "t.bzrec", tmp_path / "t.bzres", tmp_path / "b.bzres"
    assert main(["simulate", str(toml), "--out", str(rec)]) == 0
    assert read_recording(rec).metadata["scenario"]["incursions"]
    assert main(["replay", str(rec), "--offline", "--out", str(res)]) == 0
    assert main(["replay", str(rec), "--offline", "--out", str(res)]) == 2  # no clobbering
    assert main(["replay", str(rec), "--offline", "--tracker", "baseline", "--out", str(base)]) == 0
    js, png = tmp_path / "e.json", tmp_path / "e.png"
    capsys.readouterr()
    assert main(["eval", str(res), "--json", str(js), "--report", str(png), "-c", "50"]) == 0
    printed = capsys.readouterr().out
    assert "GOSPA (c=50 m" in printed and "matching rule:" in printed
    summary = json.loads(js.read_text())
    assert summary["gospa"]["c"] == 50 and summary["alerts"]["incursion"]["recall"] == 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(base), "--truth", str(rec), "--json", str(js)]) == 0
    baseline = json.loads(js.read_text())
    assert baseline["tracker"] == "baseline" and baseline["steps"] > 50


def test_replay_publish_sends_the_recording_again(simulated, context, ipc_endpoint):
    endpoint = ipc_endpoint("replay")
    frames = read_recording(simulated).frames
    bound, stop = threading.Event(), threading.Event()
    done: dict = {}

    def player() -> None:
        done["stats"] = play(
            context,
            simulated,
            endpoint,
            speed=None,
            stop=stop,
            wait_timeout=TIMEOUT,
            linger_ms=5000,
            ready=bound,
        )

    thread = threading.Thread(target=player)
    thread.start()
    got = []
    try:
        assert bound.wait(TIMEOUT)
        with context.socket(zmq.SUB) as sub:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(endpoint)
            while len(got) < len(frames):
                assert sub.poll(int(TIMEOUT * 1000)), "replay stalled"
                got.append(tuple(sub.recv_multipart()))
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert got == [(bytes(f.topic), bytes(f.payload)) for f in frames]
    assert done["stats"].sent == len(frames)


# --------------------------------------------------------------------------- eval


def _hand_made_result(path, tiny) -> None:
    """Truth targets 1 (tracked perfectly, track 10) and 2 (missed); track 20 is false.

    Both targets enter zone-t at t=5. An incursion alert on track 10 at t=7 (true,
    latency 2 s) and one on track 20 at t=8 (false).
    """
    meta = scenario_metadata(tiny)
    meta["incursions"] = [
        {
            "target": 1,
            "zone": "zone-t",
            "t_enter": 5.0,
            "t_exit": None,
            "side": "south",
            "cls": "person",
        },
        {
            "target": 2,
            "zone": "zone-t",
            "t_enter": 5.0,
            "t_exit": None,
            "side": "north",
            "cls": "person",
        },
    ]
    with RecordingWriter(
        path, {"kind": "result", "tracker": "hand", "scenario": meta}, t_start=0.0
    ) as w:
        for t in np.arange(0.0, 11.0):
            x_truth = np.array(
                [[0.0, -400.0 + 20 * t, 0.0, 20.0], [1000.0, 400.0 - 20 * t, 0.0, -20.0]]
            )
            w.write(
                t,
                b"truth.tiny",
                encode_truth(t, np.array([1, 2]), x_truth, np.array([1, 1], np.uint8)),
            )
            x_tracks = np.array([x_truth[0], [-2000.0, 2000.0, 0.0, 0.0]])
            w.write(
                t,
                b"track.update",
                encode_tracks(t, np.array([10, 20]), x_tracks, np.tile(np.eye(4), (2, 1, 1))),
            )
        for tid, t in ((10, 7.0), (20, 8.0)):
            event = {
                "type": "alert",
                "alert_id": f"zone-t:incursion:{tid}:0",
                "kind": "incursion",
                "event": "open",
                "zone": "zone-t",
                "track_id": tid,
                "t": t,
                "position": {"east": 0.0, "north": 0.0},
            }
            w.write(t, b"alert.zone-t.incursion", pack_map(event))


def test_eval_on_a_hand_made_case_gives_the_known_answer(tiny, tmp_path):
    path = tmp_path / "hand.bzres"
    _hand_made_result(path, tiny)
    c, p = 40.0, 2.0
    ev = evaluate(read_result(path, show_progress=False), c=c, p=p, end_grace=0.0)
    g = ev.summary["gospa"]["mean"]
    # One perfect pair, one missed truth, one false track at every step.
    assert g["localisation"] == 0.0
    assert g["missed"] == pytest.approx(c**p / 2)
    assert g["false"] == pytest.approx(c**p / 2)
    assert g["distance"] == pytest.approx(c)
    assert g["n_missed"] == 1 and g["n_false"] == 1
    tracks = ev.summary["tracks"]
    assert tracks["fragmentation"] == 1.0 and tracks["id_switches"] == 0
    assert tracks["never_tracked"] == 1
    inc = ev.summary["alerts"]["incursion"]
    assert (inc["n_truth"], inc["n_opened"], inc["n_true"], inc["n_false"]) == (2, 2, 1, 1)
    assert inc["recall"] == 0.5 and inc["precision"] == 0.5
    assert inc["latency_median"] == pytest.approx(2.0)
    assert [m["target"] for m in inc["missed"]] == [2]
    assert [f["track_id"] for f in inc["false"]] == [20]
    split = ev.summary["alerts"]["incursion_latency_split"]
    # Track 10 is exactly on target 1, inside from t=5 (north -300 is the zone edge at
    # t=5; the first step strictly inside is t=6), and the alert opens at t=7.
    assert split["tracking_median"] + split["rule_median"] == pytest.approx(2.0)


def test_track_pictures_round_trip():
    ids = np.array([3, 7])
    x = np.arange(8.0).reshape(2, 4)
    P = np.tile(np.diag([4.0, 9.0, 1.0, 1.0]), (2, 1, 1))
    pic = decode_tracks(encode_tracks(12.0, ids, x, P))
    assert pic.t == 12.0 and pic.ids.tolist() == [3, 7]
    np.testing.assert_array_equal(pic.x, x)
    np.testing.assert_array_equal(pic.P_pos, [[4.0, 0.0, 9.0]] * 2)
    assert msgpack.unpackb(encode_tracks(0.0, ids[:0], x[:0], P[:0]))["n"] == 0
