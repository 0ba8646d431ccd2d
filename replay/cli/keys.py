"""``bufferzone keys``: make CURVE key pairs (transport) or Ed25519 signing keys (evidence).

The two never share a file: a CURVE key authenticates a socket, a signing key vouches
for the alert log's chain head and for evidence bundles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``keys`` sub-command."""
    p = subparsers.add_parser(
        "keys",
        help="create CURVE key pairs (<name>.key, <name>.key_secret) or, with --signing, "
        "Ed25519 signing keys (<name>.sign_public, <name>.sign_secret)",
        description=(
            "Create one key pair per NAME in DIR. Give the service its .key_secret "
            "([security] server_key) and every client the service's .key; register "
            "client public keys in the [security] table (sensors, subscribers). "
            "With --signing: Ed25519 keys that sign the alert log's chain head "
            "([service] signing_key = the .sign_secret) and evidence bundles; hand the "
            ".sign_public to whoever checks them (bufferzone verify --key). "
            "Secret files are made readable by their owner only."
        ),
    )
    p.add_argument("directory", metavar="DIR", help="where to write the key files")
    p.add_argument("names", nargs="+", metavar="NAME", help="key names, e.g. server radar-1 ops")
    p.add_argument("--force", action="store_true", help="replace existing keys of these names")
    p.add_argument("--signing", action="store_true",
                   help="Ed25519 signing keys for the alert log and evidence, not CURVE keys")
    p.set_defaults(func=run_keys)


def run_keys(args: argparse.Namespace) -> int:
    """Entry point of ``bufferzone keys``."""
    from fusion.security import create_keys
    from fusion.service.chain import create_signing_key

    for name in args.names:
        if not name or "/" in name or name.startswith("."):
            print(f"bufferzone keys: bad key name {name!r}", file=sys.stderr)
            return 2
    for name in args.names:
        try:
            make = create_signing_key if args.signing else create_keys
            public, secret = make(Path(args.directory), name, overwrite=args.force)
        except FileExistsError as exc:
            print(f"bufferzone keys: {exc} (use --force to replace it)", file=sys.stderr)
            return 1
        print(f"{name}: public {public}  secret {secret}")
    return 0
