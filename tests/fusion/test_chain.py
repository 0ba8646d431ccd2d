"""The alert log's hash chain and signed heads: every kind of tampering is found and named.

Each test plays an insider with the log on disk and a text editor that recomputes CRCs:
edits a record, forges a ``close``, deletes an episode, reorders, truncates, splices in
a record of another log, or rewrites the whole chain after a deletion. ``verify`` must
name the kind and the first bad record; only an untouched log is intact.
"""

from __future__ import annotations

import pytest

from fusion.messages import pack_map, unpack_map
from fusion.service.alertlog import AlertLog, read_alert_log
from fusion.service.chain import (
    CONFIG,
    HEAD,
    create_signing_key,
    head_message,
    load_public_key,
    load_signer,
    pack_body,
    unpack_body,
)
from fusion.service.logfile import MAGIC_V1, RECORDS, RECORDS_V1, parse_log
from replay.evidence import verify_log
from tests.fusion.conftest import EVENTS


@pytest.fixture
def keys(tmp_path):
    public, secret = create_signing_key(tmp_path / "keys", "svc")
    return load_public_key(public), load_signer(secret)


def signed_log(path, signer, events=EVENTS, every=2):
    """A log of ``events`` with a signed head after every ``every`` of them."""
    with AlertLog(path, signer=signer) as log:
        for k, ev in enumerate(events, 1):
            log.append(ev)
            if k % every == 0:
                log.sign_head("test")
        log.sign_head("shutdown")
    return path.read_bytes()


def records(data):
    lf = parse_log(data, "log")
    return lf, sorted(lf.records, key=lambda r: r.offset)


def event_records(data):
    return [r for r in records(data)[1] if r.kind == 0]


def body(data, r):
    return data[r.offset + RECORDS.header_size : r.end]


def with_payload(data, r, event):
    """``data`` with record ``r``'s event replaced and its CRC recomputed."""
    fixed = body(data, r)[: len(body(data, r)) - len(r.payload)]
    return data[: r.offset] + RECORDS.encode(fixed + pack_map(event)) + data[r.end :]


def check(path, data, public=None, witnesses=()):
    path.write_bytes(data)
    ok, lines = verify_log(path, public, witnesses)
    return ok, "\n".join(lines)


def test_an_untouched_signed_log_is_intact_and_every_head_verifies(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)
    ok, text = check(path, data, public)
    assert ok, text
    lf, _ = records(data)
    # After events 2, 4 and 6, and at shutdown: always written, it marks a clean stop.
    assert all(h["valid"] for h in lf.check.heads) and len(lf.check.heads) == 4
    assert lf.check.heads[-1]["reason"] == "shutdown"
    assert read_alert_log(path)[0] == EVENTS


def test_an_edited_severity_with_a_recomputed_crc_is_named(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)
    target = event_records(data)[2]
    ev = unpack_map(target.payload)
    ev.pop("v")
    ok, text = check(path, with_payload(data, target, {**ev, "severity": "low"}), public)
    assert not ok
    assert f"first bad record: offset {target.offset}, seq {target.seq} (edited)" in text
    assert "truncated" not in text  # the record is there, only changed
    events, report = read_alert_log(path)
    assert report.error == "edited" and ev["alert_id"] in report.affected_alerts
    assert all(e["severity"] == "high" for e in events)  # the forged record is not used


def test_a_forged_close_does_not_close_the_alert(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)
    target = event_records(data)[2]  # the update of incursion 1, which stays open
    ev = unpack_map(target.payload)
    ev.pop("v")
    ok, text = check(path, with_payload(data, target, {**ev, "event": "close"}), public)
    assert not ok and "(edited)" in text
    from fusion.service.alertlog import rebuild_open_alerts

    open_, report = rebuild_open_alerts(path)
    assert [a["alert_id"] for a in open_] == ["zone-a:incursion:1:0"]


def test_an_edited_last_record_is_caught_by_its_signed_head(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)
    last = event_records(data)[-1]
    ev = unpack_map(last.payload)
    ev.pop("v")
    ok, text = check(path, with_payload(data, last, {**ev, "position": {"east": 9e3}}), public)
    assert not ok and f"seq {last.seq} (edited)" in text


def test_a_deleted_episode_is_named(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer, every=10)
    gone = [r for r in event_records(data) if b"exit:2:0" in r.payload]
    cut = data[: gone[0].offset] + data[gone[-1].end :]
    ok, text = check(path, cut, public)
    assert not ok and f"seq {gone[0].seq} (deleted)" in text


def test_a_deleted_episode_rechained_without_the_key_contradicts_the_signed_head(tmp_path,
                                                                                   keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer, every=10)
    lf, recs = records(data)
    kept = [r for r in recs if b"exit:2:0" not in r.payload]
    out, prev = bytearray(data[: recs[0].offset]), None
    for seq, r in enumerate(kept):  # renumber and relink everything: a clean-looking chain
        import hashlib

        prev = prev or unpack_body(body(data, recs[0])).prev
        new = pack_body(r.kind, seq, r.log_id, prev, r.payload)
        prev = hashlib.sha256(new).digest()
        out += RECORDS.encode(new)
    ok, text = check(path, bytes(out), public)
    assert not ok and "(deleted)" in text and "2 record(s) were removed" in text, text
    # A subscriber's witness of the original head says the same.
    top = max(recs, key=lambda r: r.seq)
    ok, text = check(path, bytes(out), None, [(top.seq, top.hash)])
    assert not ok and ("truncated" in text or "edited" in text)


def appended(data, event):
    """``data`` with ``event`` appended as the next record, correctly chained."""
    top = max(records(data)[1], key=lambda r: r.seq)
    return data + RECORDS.encode(pack_body(0, top.seq + 1, top.log_id, top.hash,
                                           pack_map(event)))


def test_an_event_appended_after_the_shutdown_head_is_named_and_not_believed(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)  # ends with the head signed at shutdown
    forged = appended(data, {**EVENTS[2], "event": "close"})  # closes incursion 1
    for key in (public, None):  # no key needed: the service writes no event there
        ok, text = check(path, forged, key)
        assert not ok and f"seq {len(EVENTS) + 4} (appended)" in text, text
    from fusion.service.alertlog import rebuild_open_alerts

    open_, report = rebuild_open_alerts(path)
    assert [a["alert_id"] for a in open_] == ["zone-a:incursion:1:0"]
    assert report.error == "appended"


def test_a_restart_after_a_clean_stop_is_no_append(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    signed_log(path, signer)
    with AlertLog(path, signer=signer) as log:  # the next run: CONFIG, then events
        log.append_record(CONFIG, {"type": "config"})
        log.sign_head("start")
        log.append(EVENTS[0])
        log.sign_head("shutdown")
    ok, text = check(path, path.read_bytes(), public)
    assert ok, text


def test_records_unsigned_before_a_crash_are_noted_when_the_restart_signs_them(tmp_path,
                                                                                keys):
    from fusion.service.witness import EvidenceKeeper

    public, signer = keys
    path = tmp_path / "alerts.log"
    with AlertLog(path, signer=signer) as log:
        log.append_many(EVENTS[:2])
        log.sign_head("interval")
        log.append_many(EVENTS[2:4])  # then a crash: no head over these two
    log = AlertLog(path)
    log.signer = signer  # as the service attaches it, after opening
    EvidenceKeeper._unvouched(log)
    log.append_record(CONFIG, {"type": "config"})
    log.sign_head("start")
    log.close()
    ok, text = check(path, path.read_bytes(), public)
    assert ok, text  # the chain holds: a crash is not tampering
    assert "note unvouched" in text and "records seq 3..4" in text, text


def test_reordered_records_are_named(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer, every=10)
    a, b = event_records(data)[1:3]
    swapped = data[: a.offset] + data[b.offset : b.end] + data[a.offset : a.end] + data[b.end :]
    ok, text = check(path, swapped, public)
    assert not ok and "(reordered)" in text


@pytest.mark.parametrize("cut", [1, 9, 40])
def test_a_cut_inside_a_record_is_a_truncation(tmp_path, keys, cut):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)
    ok, text = check(path, data[:-cut], public)
    assert not ok and "(truncated)" in text


def test_a_clean_cut_between_records_contradicts_a_witness(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer, every=2)
    lf, recs = records(data)
    top = max(recs, key=lambda r: r.seq)
    heads = [r for r in recs if r.kind == HEAD]
    shorter = data[: heads[-2].end]  # ends at a signed head: the file alone looks fine
    assert check(path, shorter, public)[0]
    ok, text = check(path, shorter, public, [(top.seq, top.hash)])
    assert not ok and "witness saw seq" in text and "(truncated)" in text


def test_a_record_spliced_from_another_log_is_named(tmp_path, keys):
    public, signer = keys
    mine, other = tmp_path / "alerts.log", tmp_path / "other.log"
    data = signed_log(mine, signer)
    foreign = event_records(signed_log(other, signer))[2]
    theirs = other.read_bytes()[foreign.offset : foreign.end]
    at = event_records(data)[3].offset
    ok, text = check(mine, data[:at] + theirs + data[at:], public)
    assert not ok and "(spliced)" in text and "belongs to log" in text


def test_heads_signed_by_another_key_are_refused_given_the_right_key(tmp_path, keys):
    public, signer = keys
    _, intruder_secret = create_signing_key(tmp_path / "intruder", "x")
    path = tmp_path / "alerts.log"
    data = signed_log(path, load_signer(intruder_secret))
    assert check(path, data)[0]  # self-consistent, but nobody said whose key it is
    ok, text = check(path, data, public)
    assert not ok and "(bad_signature)" in text and "another key" in text


def test_a_forged_signature_is_bad(tmp_path, keys):
    public, signer = keys
    path = tmp_path / "alerts.log"
    data = signed_log(path, signer)
    head = next(r for r in records(data)[1] if r.kind == HEAD)
    p = unpack_map(head.payload)
    p.pop("v")
    sig = bytearray(p["sig"])
    sig[0] ^= 1
    forged = with_payload(data, head, {**p, "sig": bytes(sig)})
    ok, text = check(path, forged, public)
    assert not ok and "bad_signature" in text
    assert head_message(b"\0" * 8, 1, b"\0" * 32).startswith(b"bufferzone")


def test_a_version_1_log_is_read_but_reported_unchained(tmp_path):
    path = tmp_path / "old.log"
    path.write_bytes(MAGIC_V1 + b"".join(RECORDS_V1.encode(pack_map(e)) for e in EVENTS))
    events, report = read_alert_log(path)
    assert events == EVENTS and report.ok and not report.chained and report.version == 1
    ok, lines = verify_log(path)
    assert not ok and "UNCHAINED" in lines[0]
    with AlertLog(path) as log:  # appended to in its own format
        log.append(EVENTS[0])
    assert read_alert_log(path)[0] == EVENTS + EVENTS[:1]


def test_a_damaged_version_1_log_is_quarantined_and_read_past_the_damage(tmp_path):
    path = tmp_path / "old.log"
    records_v1 = [RECORDS_V1.encode(pack_map(e)) for e in EVENTS]
    data = bytearray(MAGIC_V1 + b"".join(records_v1))
    at = len(MAGIC_V1) + len(records_v1[0]) + 20  # inside the second record
    data[at] ^= 0x08
    path.write_bytes(bytes(data))
    with AlertLog(path) as log:  # no sync marker: every offset is tried after damage
        assert log.recovery.quarantined and log.recovery.version == 1
        log.append(EVENTS[0])
    events, report = read_alert_log(path)
    assert events == EVENTS[:1] + EVENTS[2:] + EVENTS[:1]
    assert report.error == "crc" and not report.chained
    assert path.read_bytes().startswith(bytes(data))
