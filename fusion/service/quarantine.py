"""The quarantine file beside an alert log: damaged bytes, copied out, never deleted.

When the alert log is opened and a region of it does not verify, the region is copied
byte for byte to ``<log>.quarantine`` before anything else happens, with where it lay
and why it was refused. The log itself is never cut or rewritten (the damaged bytes
stay where they are too; readers step over them at the next sync marker), so the log
plus its quarantine always hold at least every byte the log ever held.

File layout::

    magic    8 bytes  b"BZQUAR1\\n"
    entry*   fusion.framing CRC_BEFORE_BODY records, body = one msgpack map
             {"log": file name, "log_id": hex, "offset": int, "length": int,
              "sha256": hex of the whole region, "reason": str, "detail": str,
              "t": UTC epoch of quarantining, "part": int, "parts": int,
              "bytes": this part of the region (at most PART_BYTES)}

A region is quarantined once: opening the log again finds it already listed (by
offset, length and SHA-256) and adds nothing.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack

from fusion.framing import CRC_BEFORE_BODY, Gap

__all__ = ["QUARANTINE_MAGIC", "keep", "quarantine_path", "read_quarantine"]

QUARANTINE_MAGIC = b"BZQUAR1\n"
PART_BYTES = 1 << 24
_ENTRIES = replace(CRC_BEFORE_BODY, max_body=PART_BYTES + 4096)


def quarantine_path(log_path: str | os.PathLike[str]) -> Path:
    """``<log>.quarantine``: named after the log it came from, beside it."""
    return Path(f"{os.fspath(log_path)}.quarantine")


def read_quarantine(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry of a quarantine file (parts of one region are separate entries)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if not data.startswith(QUARANTINE_MAGIC):
        raise ValueError(f"{path} is not a bufferzone quarantine file")
    entries = []
    for span in _ENTRIES.scan(data, len(QUARANTINE_MAGIC), resync=True):
        try:
            entry = msgpack.unpackb(data[span.start : span.end], raw=False)
        except Exception:  # a damaged entry of the quarantine itself: skip it, keep going
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def keep(log_path: str | os.PathLike[str], data: Any, gaps: Iterable[Gap],
         log_id: bytes = b"") -> list[dict[str, Any]]:
    """Copy each damaged region of ``data`` (the log's bytes) to the quarantine file.

    Returns one map per region (without its bytes): offset, length, sha256, reason,
    detail, and ``new`` (False when an earlier open had already quarantined it).
    """
    qpath = quarantine_path(log_path)
    known = {(e["offset"], e["length"], e["sha256"]) for e in read_quarantine(qpath)}
    regions, chunks = [], []
    now = time.time()
    for g in gaps:
        region = bytes(data[g.offset : g.end])
        digest = hashlib.sha256(region).hexdigest()
        info = {"offset": g.offset, "length": len(region), "sha256": digest,
                "reason": g.reason, "detail": g.detail}
        new = (g.offset, len(region), digest) not in known
        regions.append({**info, "new": new})
        if not new:
            continue
        parts = max(1, -(-len(region) // PART_BYTES))
        for k in range(parts):
            entry = {"log": Path(log_path).name, "log_id": log_id.hex(), **info, "t": now,
                     "part": k, "parts": parts,
                     "bytes": region[k * PART_BYTES : (k + 1) * PART_BYTES]}
            chunks.append(_ENTRIES.encode(msgpack.packb(entry, use_bin_type=True)))
    if chunks:
        fresh = not qpath.exists() or qpath.stat().st_size == 0
        with open(qpath, "ab") as f:
            if fresh:
                f.write(QUARANTINE_MAGIC)
            f.write(b"".join(chunks))
            f.flush()
            os.fsync(f.fileno())  # the copy is on disk before the log moves on
    return regions
