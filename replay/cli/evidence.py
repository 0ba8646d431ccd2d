"""``bufferzone verify`` and ``bufferzone evidence``: what the record proves, checked.

``verify FILE`` takes an alert log (checks its whole hash chain, its head signatures
and any witnesses) or an evidence bundle (its signature and chain proof); exit 0 only
when intact, 1 when not, 2 on a usage error. ``evidence ALERT_ID`` writes the signed
bundle of one alert (:mod:`replay.evidence`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from replay.cli.common import CommandError, parse_lonlat


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` and ``evidence`` sub-commands."""
    v = subparsers.add_parser(
        "verify",
        help="check an alert log's hash chain and signatures, or an evidence bundle",
        description="Check FILE offline. An alert log: every record's CRC and chain link, "
        "holes, order, records from another log, head signatures, and the heads "
        "subscribers saw (--witness); the first bad record and the kind of damage are "
        "named. An evidence bundle: its signature and its chain proof. Exit 0 only for an "
        "intact file (signed by --key, when given), 1 otherwise.",
    )
    v.add_argument("file", metavar="FILE", help="alert log or evidence bundle")
    v.add_argument("--key", metavar="PUBLIC",
                   help="the service's .sign_public (or 64 hex digits): signatures must be its")
    v.add_argument("--witness", action="append", default=[], metavar="SEQ:HASH",
                   help="a head seen on the status topic (log_head.seq:log_head.hash); repeatable")
    v.add_argument("--json", action="store_true", help="print the result as one JSON object")
    v.set_defaults(func=run_verify)

    e = subparsers.add_parser(
        "evidence",
        help="write one signed file with everything behind an alert",
        description="Collect ALERT_ID's events and their chain proof from --log, the "
        "detection batches from the service's raw-input recordings (--intake), the zones "
        "and rules in force (from the log, else --scenario/--zones/--rules) and sign the "
        "bundle with --key. Check it with 'bufferzone verify FILE'; re-run it with "
        "'bufferzone replay FILE --offline --out RESULT'.",
    )
    e.add_argument("alert_id", metavar="ALERT_ID")
    e.add_argument("--log", required=True, metavar="LOG", help="the alert log")
    e.add_argument("--out", required=True, metavar="FILE", help="bundle to write")
    e.add_argument("--key", required=True, metavar="SECRET", help="a .sign_secret to sign with")
    e.add_argument("--intake", action="append", default=[], metavar="DIR",
                   help="raw-input recording directory (default: intake_dir of --config)")
    e.add_argument("--config", metavar="TOML", help="the service's configuration file")
    e.add_argument("--lead", type=float, default=120.0, metavar="S",
                   help="seconds of detections before the alert opened (default 120)")
    e.add_argument("--scenario", metavar="SCENARIO",
                   help="zones and origin of this scenario, if the log does not record them")
    e.add_argument("--zones", metavar="GEOJSON", help="zones as GeoJSON in lon/lat")
    e.add_argument("--origin", metavar="LON,LAT", type=parse_lonlat)
    e.add_argument("--rules", metavar="TOML", help="alert rules, if the log does not record them")
    e.add_argument("--force", action="store_true", help="replace --out if it exists")
    e.set_defaults(func=run_evidence)


def _witnesses(texts: list[str]) -> list[tuple[int, bytes]]:
    out = []
    for text in texts:
        seq, _, head = text.partition(":")
        try:
            out.append((int(seq), bytes.fromhex(head)))
        except ValueError:
            raise CommandError(f"--witness {text!r}: expected SEQ:HASH (hex)") from None
    return out


def run_verify(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone verify``."""
    from fusion.service.chain import load_public_key
    from fusion.service.logfile import MAGIC, MAGIC_V1
    from replay.evidence import verify_bundle, verify_log

    path = Path(args.file)
    try:
        public = load_public_key(args.key) if args.key else None
        with open(path, "rb") as f:
            head = f.read(8)
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if head in (MAGIC, MAGIC_V1):
        ok, lines = verify_log(path, public, _witnesses(args.witness))
        what = "log"
    else:
        ok, lines = verify_bundle(path, public)
        what = "bundle"
    if args.json:
        print(json.dumps({"file": str(path), "type": what, "intact": ok, "lines": lines}))
    else:
        print("\n".join(lines))
    return 0 if ok else 1


def _fallback_context(args: argparse.Namespace) -> dict | None:
    """Zones and rules from the command line, for a log that does not record them."""
    if not (args.scenario or args.zones):
        return None
    from fusion.alerting.engine import AlertEngine
    from fusion.alerting.rules import load_rules
    from fusion.service.provenance import service_context
    from replay.cli.service import _zones_and_frame

    zones, frame = _zones_and_frame(args)
    return service_context(AlertEngine(zones, load_rules(args.rules), frame))


def run_evidence(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone evidence``."""
    from fusion.config import ConfigError
    from fusion.service.chain import load_signer
    from fusion.service.logfile import AlertLogError
    from replay.evidence import make_bundle

    intake = list(args.intake)
    try:
        if not intake and args.config:
            from fusion.service import ServiceConfig

            intake_dir = ServiceConfig.from_toml(args.config).intake_dir
            intake = [intake_dir] if intake_dir else []
        if not intake:
            raise CommandError("no raw input: give --intake DIR (the service's intake_dir)")
        signer = load_signer(args.key)
        summary = make_bundle(args.alert_id, args.log, args.out, signer, intake, args.lead,
                              _fallback_context(args), overwrite=args.force)
    except (AlertLogError, ConfigError, OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    rep = summary["reproduced"]
    print(f"wrote {args.out}: {summary['events']} events, {summary['batches']} detection "
          f"batches ({summary['updated_track']} updated the track), "
          f"{summary['chain_records']} log records "
          f"({'up to a signed head' if summary['signed_head'] else 'NO signed head yet'})",
          file=sys.stderr)
    if rep is None:
        print("bufferzone evidence: the alert was NOT reproduced from the bundle's detections "
              "(try a longer --lead)", file=sys.stderr)
        return 1
    print(f"reproduced: {rep['alert_id']} at {rep['dt']:+.2f} s, {rep['distance_m']:.1f} m "
          "from the original", file=sys.stderr)
    return 0
