"""Restarting from a damaged or tampered log: the open set comes from trusted records only.

The issue's probe: one flipped byte mid-log used to cut the log there (half of it
deleted) and, without a checkpoint, restore a wrong open set. Now the damaged record
is quarantined, every other record is used, and ``status`` says what was affected.
"""

from __future__ import annotations

from fusion import Tracker
from fusion.alerting.engine import AlertEngine
from fusion.messages import pack_map, unpack_map
from fusion.service import Pipeline, ServiceConfig, restore_pipeline
from fusion.service.alertlog import AlertLog, open_alerts_from_events
from fusion.service.logfile import RECORDS, parse_log
from tests.fusion.conftest import long_history
from tests.fusion.support import FakeClock


def history():
    return [{**e, "zone": "zone-t"} for e in long_history()]


def restart(strip_zones, path):
    log = AlertLog(path)
    pipe = Pipeline(Tracker(), AlertEngine(strip_zones),
                    ServiceConfig(det_bind=("inproc://x",)), alert_log=log, clock=FakeClock())
    restore_pipeline(pipe, "", str(path))
    return pipe, log


def test_a_flipped_byte_mid_log_restores_every_unaffected_alert(strip_zones, tmp_path):
    events = history()
    path = tmp_path / "alerts.log"
    with AlertLog(path) as log:
        offsets = log.append_many(events)
    truth = {e["alert_id"] for e in open_alerts_from_events(events)}
    data = bytearray(path.read_bytes())
    data[offsets[len(events) // 2] + 40] ^= 0x01
    path.write_bytes(bytes(data))
    pipe, log = restart(strip_zones, path)
    trust = pipe.status()["restored"]["log_trust"]
    affected = set(trust["affected_alerts"])
    assert trust["open_set_from"] == "trusted records only" and trust["chained"]
    assert trust["trusted_event_records"] == len(events) - 1
    assert trust["quarantined"] and trust["damage"]
    restored = {a["alert_id"] for a in pipe.engine.open_alerts()}
    assert restored - affected == truth - affected
    assert len(affected) < 10
    log.close()


def test_a_forged_close_is_not_believed_on_restart(strip_zones, tmp_path):
    events = history()
    path = tmp_path / "alerts.log"
    with AlertLog(path) as log:
        log.append_many(events)
    truth = {e["alert_id"] for e in open_alerts_from_events(events)}
    victim = sorted(truth)[0]
    data = path.read_bytes()
    lf = parse_log(data, "log")
    target = next(r for r in reversed(lf.records) if victim.encode() in r.payload)
    ev = unpack_map(target.payload)
    ev.pop("v")
    fixed = data[target.offset + RECORDS.header_size : target.end][: -len(target.payload)]
    forged = RECORDS.encode(fixed + pack_map({**ev, "event": "close"}))
    path.write_bytes(data[: target.offset] + forged + data[target.end :])
    pipe, log = restart(strip_zones, path)
    assert victim in {a["alert_id"] for a in pipe.engine.open_alerts()}
    assert victim in pipe.status()["restored"]["log_trust"]["affected_alerts"]
    log.close()
