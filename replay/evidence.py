"""Evidence bundles: one signed file that shows how an alert came about, and its checks.

``bufferzone evidence ALERT_ID --log LOG --out FILE`` writes a *bundle*: a recording
(:mod:`replay.recording`, so ``bufferzone replay FILE --offline`` runs on it) whose
header metadata holds::

    {"kind": "evidence", "bundle_version": 1, "writer": "bufferzone evidence",
     "alert_id": str, "events": [the alert's events, from the log],
     "scenario": {"origin", "zones" (GeoJSON lon/lat), ...},   # zones in force
     "rules": {...},                                            # rules in force
     "tracker_config": {...}, "service": {reorder_window, alert_interval, ...},
     "chain": {"log_id", "version", "records": [{"seq", "offset", "body"}],
               "signed": bool},   # log record bodies from the alert's first event up
                                  # to the signed head that covers its last one
     "batches": [{"sensor_id", "kind", "seq", "t", "user_id", "updated_track"}],
     "track_states": [{"t", "x", "P_pos"}],  # the reproduced track, per update
     "reproduced": {"track_id", "t_open", "dt", "distance_m"},
     "window": [t_begin, t_end]}

and whose frames are the detection batches of every sensor over the window
``[t_open - lead, t_close]``, byte for byte as the service accepted them (from its
raw-input recordings), with ``auth.<sensor>`` frames naming the CURVE key each was
published with. The last frame, ``signature``, holds an Ed25519 signature of the
SHA-256 of every byte before it. ``bufferzone verify FILE`` checks that signature, the
chain proof (each record commits to the one before, the events are in those
records, and the head that covers them is signed) and, given ``--key``, that both
were signed by that key.

The replay numbers tracks from the start of the bundle, so the reproduced alert's
track id is not the live one; "the same alert" is the same kind and zone, opened
within one batch period of the original, at the original's position.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from fusion.messages import WireError, decode_batch, pack_map, unpack_map
from fusion.service import chain
from fusion.service.chain import CONFIG, EVENT, HEAD, Signer
from fusion.service.intake import intake_files
from fusion.service.logfile import RECORDS, LogFile, parse_log
from replay.recording import _BODY_HEAD, FRAMES, Frame, RecordingReader, RecordingWriter

__all__ = ["BUNDLE_VERSION", "make_bundle", "reproduce", "verify_bundle", "verify_log"]

BUNDLE_VERSION = 1
_BUNDLE_DOMAIN = b"bufferzone evidence bundle v1\0"


# -- the log side ----------------------------------------------------------------------


def _read_log(path: str | Path, public: bytes | None = None,
              witnesses: Iterable[tuple[int, bytes]] = ()) -> tuple[LogFile, bytes]:
    data = Path(path).read_bytes()
    return parse_log(data, str(path), public, witnesses), data


def verify_log(path: str | Path, public: bytes | None = None,
               witnesses: Iterable[tuple[int, bytes]] = ()) -> tuple[bool, list[str]]:
    """Check a whole alert log offline; (intact, lines for a person).

    Intact means: version 2, every byte in a record, every link, no hole, no foreign
    record, every head signature valid, and with ``public`` every record covered by a
    head that key signed.
    """
    lf, _ = _read_log(path, public, witnesses)
    lines = []
    own = [r for r in lf.records if r.log_id == lf.log_id]
    if lf.version == 1:
        lines.append(f"{path}: version-1 log, UNCHAINED: {len(lf.records)} records checked by "
                     "CRC only; an edit with a recomputed CRC cannot be detected")
    else:
        heads = lf.check.heads
        lines.append(f"{path}: log {lf.log_id.hex()}, {len(own)} chained records, "
                     f"{sum(h['valid'] for h in heads)} of {len(heads)} head signatures valid"
                     + ("" if public else " (no --key: signatures checked against the key "
                        "they name, which proves nothing about who made them)"))
    for r in lf.records:
        if r.kind == chain.NOTE and r.offset not in lf.check.untrusted:
            note = chain.payload_map(r)
            for f in note.get("findings", []):
                if f.get("fatal"):
                    lines.append(f"recorded by the service on open (seq {r.seq}): "
                                 f"{f.get('kind')}: {f.get('detail')}")
    noted_fatal = any(line.startswith("recorded by") for line in lines)
    fatal = [f for f in lf.check.findings if f.fatal]
    for f in lf.check.findings:
        lines.append(f"{'BAD ' if f.fatal else 'note'} {f.kind} at offset {f.offset}"
                     + (f", seq {f.seq}" if f.seq is not None else "") + f": {f.detail}")
    if fatal:
        # A record no key vouches for is weaker news than one shown to be tampered with.
        first = next((f for f in fatal if f.kind != "unsigned"), fatal[0])
        lines.append(f"first bad record: offset {first.offset}"
                     + (f", seq {first.seq}" if first.seq is not None else "")
                     + f" ({first.kind})")
    intact = lf.version == 2 and not fatal and not noted_fatal
    lines.append("intact" if intact else "NOT intact")
    return intact, lines


def _alert_records(lf: LogFile, alert_id: str) -> list[tuple[chain.ChainRecord, dict]]:
    out = []
    for r in sorted(lf.records, key=lambda r: r.seq):
        if r.kind != EVENT or r.offset in lf.check.untrusted or r.log_id != lf.log_id:
            continue
        try:
            ev = unpack_map(r.payload)
        except WireError:
            continue
        if ev.get("alert_id") == alert_id:
            ev.pop("v", None)
            out.append((r, ev))
    return out


def _chain_proof(lf: LogFile, data: bytes, first_seq: int, last_seq: int) -> dict[str, Any]:
    """Record bodies from ``first_seq`` to the first valid head covering ``last_seq``."""
    own = {r.seq: r for r in lf.records if r.log_id == lf.log_id
           and r.offset not in lf.check.untrusted}
    cover = [h for h in lf.check.heads if h["valid"] and h["seq"] >= last_seq]
    end = min((own_seq for own_seq, r in own.items() if r.kind == HEAD
               and any(h["offset"] == r.offset for h in cover)), default=max(own))
    records = []
    for seq in range(first_seq, end + 1):
        r = own.get(seq)
        if r is None:
            raise ValueError(f"the log has no trusted record seq {seq}: no chain proof")
        body = data[r.offset + RECORDS.header_size : r.end]
        records.append({"seq": seq, "offset": r.offset, "body": body})
    return {"log_id": lf.log_id.hex(), "version": lf.version, "records": records,
            "signed": bool(cover)}


def _context(lf: LogFile, before_seq: int) -> dict[str, Any] | None:
    """The newest CONFIG record written before ``before_seq``."""
    best = None
    for r in lf.records:
        if (r.kind == CONFIG and r.seq < before_seq and r.offset not in lf.check.untrusted
                and (best is None or r.seq > best.seq)):
            best = r
    return None if best is None else dict(chain.payload_map(best))


# -- the raw input ---------------------------------------------------------------------


def _intake_frames(dirs: Sequence[str | Path], t0: float, t1: float
                   ) -> Iterator[tuple[Frame, dict[str, Any]]]:
    """Frames of accepted batches measured in [t0, t1], with who sent them."""
    keys: dict[str, str] = {}
    for directory in dirs:
        for path in intake_files(directory):
            with RecordingReader(path, on_corrupt="stop") as reader:
                keys.clear()
                for frame in reader:
                    topic = bytes(frame.topic)
                    if topic.startswith(b"auth."):
                        auth = unpack_map(bytes(frame.payload))
                        keys[auth["sensor_id"]] = auth["user_id"]
                        continue
                    if not topic.startswith(b"det."):
                        continue
                    try:
                        batch = decode_batch(bytes(frame.payload))
                    except WireError:
                        continue
                    if t0 <= batch.t <= t1:
                        info = {"sensor_id": batch.sensor_id, "kind": batch.sensor_kind,
                                "seq": int(batch.seq), "t": float(batch.t),
                                "user_id": keys.get(batch.sensor_id)}
                        yield Frame(frame.t_recv, topic, bytes(frame.payload)), info


# -- reproducing the alert -------------------------------------------------------------


def _run(frames: Sequence[Frame], ctx: dict[str, Any], watch: int | None = None
         ) -> tuple[list[dict[str, Any]], list[np.ndarray], list[dict[str, Any]]]:
    """Tracker and rules over ``frames`` as ``replay --offline`` runs them.

    Returns the alert events, the tracks each accepted batch updated (in frame order),
    and the states of track ``watch`` after each batch that updated it.
    """
    from fusion.alerting.engine import AlertEngine
    from fusion.service import Pipeline, ServiceConfig
    from fusion.service.provenance import rules_from_context, zones_from_context
    from fusion.tracking.tracker import Tracker, TrackerConfig
    from replay.offline import service_config_from, tracker_config_from

    zones, frame = zones_from_context(ctx)
    engine = AlertEngine(zones, rules_from_context(ctx), frame)
    core = Tracker(tracker_config_from(ctx, TrackerConfig()))
    updated: list[np.ndarray] = []
    states: list[dict[str, Any]] = []

    class Watch:
        def process(self, batch: Any) -> Any:
            result = core.process(batch)
            updated.append(result.updated)
            if watch is not None and watch in result.updated:
                snap = core.snapshot(confirmed_only=False)
                i = int(np.flatnonzero(snap.ids == watch)[0])
                states.append({"t": float(batch.t), "sensor_id": batch.sensor_id,
                               "seq": int(batch.seq), "x": snap.x[i].tolist(),
                               "P_pos": snap.P[i, :2, :2].ravel().tolist()})
            return result

        def __len__(self) -> int:
            return len(core)

        def __getattr__(self, name: str) -> Any:
            return getattr(core, name)

    events: list[dict[str, Any]] = []
    now = [frames[0].t_recv if frames else 0.0]
    pipe = Pipeline(Watch(), engine, service_config_from(ctx, ServiceConfig()),  # type: ignore[arg-type]
                    emit=lambda topic, payload: events.append(msgpack.unpackb(payload)),
                    clock=lambda: now[0])
    pipe.run_id = "offline"
    next_timer = -math.inf
    for f in frames:
        now[0] = f.t_recv
        if bytes(f.topic).startswith(b"det."):
            pipe.receive([bytes(f.topic), bytes(f.payload)], f.t_recv)
        pipe.release()
        if f.t_recv >= next_timer:  # the live loop's timer, on the recording's clock
            pipe.timer(f.t_recv)
            next_timer = f.t_recv + 1.0
    pipe.release(flush=True)
    pipe.timer(now[0])
    return events, updated, states


def _batch_period(infos: Sequence[dict[str, Any]], sensors: Iterable[str]) -> float:
    """The longest median batch interval of ``sensors``: "one batch" of time."""
    periods = [0.5]
    for s in set(sensors):
        t = np.sort([i["t"] for i in infos if i["sensor_id"] == s])
        if t.size > 1:
            periods.append(float(np.median(np.diff(t))))
    return max(periods)


def match_alert(original: dict[str, Any], events: Sequence[dict[str, Any]],
                tolerance: float) -> dict[str, Any] | None:
    """The replayed ``open`` of the same kind and zone nearest the original in time and
    place, if it is within ``tolerance`` seconds."""
    best, best_cost = None, math.inf
    p0 = original.get("position") or {}
    for ev in events:
        if (ev.get("event") != "open" or ev.get("kind") != original["kind"]
                or ev.get("zone") != original["zone"]):
            continue
        dt = abs(float(ev["t"]) - float(original["t"]))
        p = ev.get("position") or {}
        dist = math.hypot((p.get("east") or 0.0) - (p0.get("east") or 0.0),
                          (p.get("north") or 0.0) - (p0.get("north") or 0.0))
        if dt <= tolerance and dt + dist / 100.0 < best_cost:
            best_cost = dt + dist / 100.0
            best = {"track_id": int(ev["track_id"]), "alert_id": ev["alert_id"],
                    "t_open": float(ev["t"]), "dt": float(ev["t"]) - float(original["t"]),
                    "distance_m": dist, "tolerance_s": tolerance}
    return best


def reproduce(path: str | Path) -> dict[str, Any] | None:
    """Re-run tracker and rules on a bundle; the replayed alert that matches, or None."""
    with RecordingReader(path) as reader:
        meta = reader.metadata
        frames = [Frame(f.t_recv, bytes(f.topic), bytes(f.payload)) for f in reader]
    events, _, _ = _run(frames, meta)
    opening = next(e for e in meta["events"] if e["event"] == "open")
    sensors = [b["sensor_id"] for b in meta["batches"]]
    return match_alert(opening, events, _batch_period(meta["batches"], sensors))


# -- writing and checking bundles ------------------------------------------------------


def _sign_file(path: Path, signer: Signer) -> None:
    """Append the ``signature`` frame: Ed25519 over the SHA-256 of every byte before it."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    sig = signer.sign(_BUNDLE_DOMAIN + digest)
    with open(path, "ab") as f:
        payload = pack_map({"type": "signature", "sha256": digest, "sig": sig,
                            "key": signer.public})
        f.writelines(FRAMES.pieces(_BODY_HEAD.pack(0.0, 9), b"signature", payload))


def make_bundle(alert_id: str, log_path: str | Path, out: str | Path, signer: Signer,
                intake_dirs: Sequence[str | Path], lead: float = 120.0,
                context: dict[str, Any] | None = None, overwrite: bool = False
                ) -> dict[str, Any]:
    """Write the signed evidence bundle of ``alert_id``; returns a summary.

    Parameters
    ----------
    alert_id : str
    log_path : str or Path
        The alert log (version 2 for a chain proof; a version-1 log gives none).
    out : str or Path
    signer : Signer
        Signs the bundle.
    intake_dirs : sequence of path
        The service's raw-input recording directories.
    lead : float
        Seconds of detections before the alert opened (track birth, confirmation, dwell).
    context : dict, optional
        Zones, rules and settings (:func:`fusion.service.provenance.service_context`)
        when the log has no CONFIG record from before the alert.

    Raises
    ------
    ValueError
        If the log has no trusted event of ``alert_id`` or no detections are found.
    """
    lf, data = _read_log(log_path)
    recs = _alert_records(lf, alert_id)
    if not recs:
        raise ValueError(f"{log_path} holds no trusted event of alert {alert_id!r}")
    events = [ev for _, ev in recs]
    ctx = _context(lf, recs[0][0].seq) or context
    if ctx is None or "scenario" not in ctx:
        raise ValueError(f"{log_path} records no zones and rules before {alert_id!r}: "
                         "give them (--scenario or --zones/--origin, --rules)")
    proof: dict[str, Any] = {"version": 1, "records": [], "signed": False}
    if lf.version == 2:
        proof = _chain_proof(lf, data, recs[0][0].seq, recs[-1][0].seq)
    opening = next((e for e in events if e["event"] == "open"), events[0])
    window = (float(opening["t"]) - lead, float(events[-1]["t"]) + 1.0)
    picked = list(_intake_frames(intake_dirs, *window))
    if not picked:
        raise ValueError(f"no accepted detections in {window} in {list(map(str, intake_dirs))}")
    frames = [f for f, _ in picked]
    infos = [i for _, i in picked]
    replayed, updated, _ = _run(frames, ctx)
    match = match_alert(opening, replayed, _batch_period(infos, opening.get("evidence", [])))
    states: list[dict[str, Any]] = []
    if match is not None:
        _, updated, states = _run(frames, ctx, watch=match["track_id"])
        t_from = float(opening.get("opened_at", opening["t"])) - 10.0
        for info, ids in zip(infos, updated, strict=False):
            info["updated_track"] = bool(match["track_id"] in ids and info["t"] >= t_from)
    meta: dict[str, Any] = {"kind": "evidence", "bundle_version": BUNDLE_VERSION,
            "writer": "bufferzone evidence", "alert_id": alert_id, "events": events,
            **{k: ctx[k] for k in ("scenario", "rules", "tracker_config", "service")
               if k in ctx},
            "chain": proof, "batches": infos, "track_states": states,
            "reproduced": match, "window": list(window)}
    out = Path(out)
    with RecordingWriter(out, meta, t_start=frames[0].t_recv, overwrite=overwrite) as w:
        for f, info in zip(frames, infos, strict=False):
            if info["user_id"] is not None:
                w.write(f.t_recv, b"auth." + info["sensor_id"].encode(),
                        pack_map({"type": "auth", "sensor_id": info["sensor_id"],
                                  "user_id": info["user_id"]}))
            w.write(f.t_recv, f.topic, f.payload)
    _sign_file(out, signer)
    return {"events": len(events), "batches": len(frames),
            "updated_track": sum(bool(i.get("updated_track")) for i in infos),
            "chain_records": len(proof["records"]), "signed_head": proof["signed"],
            "reproduced": match}


def _check_proof(meta: dict[str, Any], public: bytes | None) -> list[str]:
    """Problems with the chain proof (empty when it holds)."""
    proof = meta.get("chain") or {}
    if proof.get("version") != 2:
        return ["the bundle's log is version 1: unchained, no proof"]
    log_id = bytes.fromhex(proof["log_id"])
    bodies = [bytes(r["body"]) for r in proof["records"]]
    recs = [chain.unpack_body(b) for b in bodies]
    problems = []
    for a, b in zip(recs, recs[1:], strict=False):
        if b.prev != a.hash or b.seq != a.seq + 1 or b.log_id != log_id:
            problems.append(f"chain broken between seq {a.seq} and {b.seq}")
    logged = [unpack_map(r.payload) for r in recs if r.kind == EVENT]
    for ev in logged:
        ev.pop("v", None)
    ours = [e for e in logged if e.get("alert_id") == meta["alert_id"]]
    if ours != meta["events"]:
        problems.append("the alert's events differ from the log records in the proof")
    heads = [r for r in recs if r.kind == HEAD]
    signed = False
    for h in heads:
        p = chain.payload_map(h)
        target = next((r for r in recs if r.seq == p.get("seq")), None)
        ok = (target is not None and target.hash == bytes(p["head"])
              and chain.verify_head(bytes(p["key"]), log_id, int(p["seq"]), bytes(p["head"]),
                                    bytes(p["sig"])))
        if public is not None and bytes(p["key"]) != public:
            ok = False
        signed |= ok
        if not ok:
            problems.append(f"head signature at seq {h.seq} does not verify")
    if not signed:
        problems.append("no valid signed head covers the alert's records")
    return problems


def verify_bundle(path: str | Path, public: bytes | None = None) -> tuple[bool, list[str]]:
    """Check a bundle's own signature and its chain proof; (valid, lines)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        with RecordingReader(path, on_corrupt="raise") as reader:
            meta = reader.metadata
            frames = list(reader)
            complete = reader.report is not None and reader.report.complete
    except Exception as exc:  # any unreadable byte: not a valid bundle
        return False, [f"{path}: not a readable evidence bundle ({exc})", "NOT valid"]
    lines, ok = [], True
    if meta.get("kind") != "evidence" or not frames or bytes(frames[-1].topic) != b"signature":
        return False, [f"{path}: not an evidence bundle (no signature frame)", "NOT valid"]
    if not complete:
        return False, [f"{path}: bytes after the signature", "NOT valid"]
    sig = unpack_map(bytes(frames[-1].payload))
    last = 4 + 8 + 2 + len(frames[-1].topic) + len(frames[-1].payload) + 4
    digest = hashlib.sha256(data[: len(data) - last]).digest()
    key = bytes(sig["key"])
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        Ed25519PublicKey.from_public_bytes(key).verify(bytes(sig["sig"]), _BUNDLE_DOMAIN + digest)
        sig_ok = digest == bytes(sig["sha256"])
    except Exception:  # InvalidSignature, or a malformed key: either way not valid
        sig_ok = False
    if public is not None and key != public:
        sig_ok = False
        lines.append(f"bundle signed by {key.hex()}, not by the given key")
    lines.append(f"bundle signature: {'valid' if sig_ok else 'INVALID'} (key {key.hex()})")
    ok &= sig_ok
    problems = _check_proof(meta, public)
    lines += [f"chain proof: {p}" for p in problems] or [
        f"chain proof: {len(meta['chain']['records'])} log records link up to a signed head"]
    ok &= not problems
    lines.append(f"alert {meta['alert_id']}: {len(meta['events'])} events, "
                 f"{len(meta['batches'])} detection batches "
                 f"({sum(bool(b.get('updated_track')) for b in meta['batches'])} updated its "
                 "track)")
    lines.append("valid" if ok else "NOT valid")
    return ok, lines
