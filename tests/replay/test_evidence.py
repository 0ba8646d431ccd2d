"""Evidence bundles: made on one run, checked in a fresh process, replayed to the same alert.

The service side runs socket-free (a Pipeline, its AlertLog and the EvidenceKeeper that
the socket loop drives), with a fake clock so the run is exactly repeatable.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fusion import Tracker
from fusion.alerting.engine import AlertEngine
from fusion.alerting.zones import Zone, ZoneSet
from fusion.geo import LocalFrame
from fusion.messages import unpack_map
from fusion.service import Pipeline, ServiceConfig
from fusion.service.alertlog import AlertLog, read_alert_log
from fusion.service.chain import create_signing_key, load_public_key, load_signer
from fusion.service.witness import EvidenceKeeper
from replay.cli import main
from replay.evidence import make_bundle, match_alert, verify_bundle
from replay.offline import replay_offline
from replay.recording import read_recording
from tests.conftest import STRIP
from tests.fusion.support import FakeClock, crossing_batches, frames


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One service run over a vehicle crossing the strip: log, raw input, keys."""
    d = tmp_path_factory.mktemp("evidence")
    public, secret = create_signing_key(d / "keys", "svc")
    zones = ZoneSet([Zone.from_local("zone-t", STRIP, side_names=["north", "south"])])
    cfg = ServiceConfig(det_bind=("inproc://x",), reorder_window=0.0,
                        alert_log=str(d / "alerts.log"), intake_dir=str(d / "intake"),
                        signing_key=str(secret))
    clock = FakeClock()
    log = AlertLog(cfg.alert_log)
    pipe = Pipeline(Tracker(), AlertEngine(zones, None, LocalFrame(33.0, 35.0)), cfg,
                    alert_log=log, clock=clock, wall=clock)
    keeper = EvidenceKeeper(pipe, cfg)
    assert keeper.intake is not None
    keeper.intake.wall = clock
    keeper.start()
    for b in crossing_batches(120):
        clock.now = b.t
        message = frames(b)
        if pipe.receive(message):
            keeper.accepted(message, "radar-key-1")
        pipe.release()
        keeper.tick(b.t)
    keeper.finish()
    status = keeper.status()
    log.close()
    events, _ = read_alert_log(d / "alerts.log")
    incursion = next(e for e in events if e["kind"] == "incursion" and e["event"] == "open")
    bundle = d / "incursion.bzev"
    summary = make_bundle(incursion["alert_id"], d / "alerts.log", bundle, load_signer(secret),
                          [d / "intake"])
    return {"dir": d, "public": public, "secret": secret, "bundle": bundle,
            "summary": summary, "alert": incursion, "status": status}


def test_status_carries_the_signed_head_as_a_witness(run):
    head = run["status"]["log_head"]
    assert head["chained"] and head["signed"]["reason"] == "shutdown"
    assert head["signed"]["key"] == load_public_key(run["public"]).hex()
    assert run["status"]["intake"]["frames"] == 120


def test_a_bundle_verifies_in_a_fresh_process(run):
    out = subprocess.run([sys.executable, "-m", "replay.cli", "verify", str(run["bundle"]),
                          "--key", str(run["public"])], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("valid") and "link up to a signed head" in out.stdout


def test_a_bundle_with_one_changed_byte_does_not_verify(run, tmp_path):
    data = run["bundle"].read_bytes()
    rng = np.random.default_rng(13)
    # The header (metadata: events, chain proof), a detection, and the signature frame.
    spots = [20, 200, *rng.integers(300, len(data) - 100, 5).tolist(), len(data) - 10]
    for k, at in enumerate(spots):
        bad = bytearray(data)
        bad[at] ^= 0x01
        path = tmp_path / f"bad-{k}.bzev"
        path.write_bytes(bytes(bad))
        ok, lines = verify_bundle(path, load_public_key(run["public"]))
        assert not ok, (at, lines)
    out = subprocess.run([sys.executable, "-m", "replay.cli", "verify", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1


def test_a_bundle_signed_by_someone_else_is_refused_given_the_right_key(run, tmp_path):
    _, other = create_signing_key(tmp_path / "k", "other")
    bundle = tmp_path / "other.bzev"
    make_bundle(run["alert"]["alert_id"], run["dir"] / "alerts.log", bundle, load_signer(other),
                [run["dir"] / "intake"])
    assert verify_bundle(bundle)[0]
    ok, lines = verify_bundle(bundle, load_public_key(run["public"]))
    assert not ok and any("not by the given key" in line for line in lines)


def test_the_bundle_holds_what_a_dispute_needs(run):
    meta = read_recording(run["bundle"]).metadata
    assert meta["kind"] == "evidence" and meta["alert_id"] == run["alert"]["alert_id"]
    assert [e["event"] for e in meta["events"]][0] == "open"
    assert meta["scenario"]["zones"]["features"][0]["properties"]["name"] == "zone-t"
    assert meta["rules"]["zones"]["*"]["incursion"]["p_open"] > 0
    batches = meta["batches"]
    assert {b["sensor_id"] for b in batches} == {"radar-1"}
    assert all(b["user_id"] == "radar-key-1" for b in batches)
    assert [b["seq"] for b in batches] == sorted(b["seq"] for b in batches)
    assert sum(b.get("updated_track", False) for b in batches) > 10
    assert len(meta["track_states"]) > 10 and meta["chain"]["signed"]


def test_replaying_a_bundle_opens_the_same_alert(run, tmp_path):
    result = tmp_path / "bundle.bzres"
    summary = replay_offline(run["bundle"], result, show_progress=False)
    assert summary.alerts > 0
    events = [unpack_map(f.payload) for f in read_recording(result).frames
              if bytes(f.topic).startswith(b"alert.")]
    match = match_alert(run["alert"], events, tolerance=1.0)  # one radar scan
    assert match is not None, [(e["alert_id"], e["event"], e["t"]) for e in events]
    assert match["distance_m"] < 50.0
    assert run["summary"]["reproduced"]["alert_id"] == match["alert_id"]


def test_evidence_command_writes_a_bundle_that_verify_accepts(run, tmp_path):
    out = tmp_path / "cli.bzev"
    rc = main(["evidence", run["alert"]["alert_id"], "--log", str(run["dir"] / "alerts.log"),
               "--out", str(out), "--key", str(run["secret"]),
               "--intake", str(run["dir"] / "intake")])
    assert rc == 0 and out.exists()
    assert main(["verify", str(out), "--key", str(run["public"])]) == 0
    assert main(["verify", str(run["dir"] / "alerts.log"), "--key", str(run["public"])]) == 0
    rc = main(["evidence", "zone-t:incursion:99:0", "--log", str(run["dir"] / "alerts.log"),
               "--out", str(tmp_path / "none.bzev"), "--key", str(run["secret"]),
               "--intake", str(run["dir"] / "intake")])
    assert rc == 2
