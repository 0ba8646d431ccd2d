"""GeoJSON and KML of a result file: its zones, every track's path, every alert episode.

A result (``bufferzone replay --offline``) holds the track pictures and alert events the
service would have published; this turns them into files a GIS opens. Times: a result
of a simulated scenario counts seconds from 0, which have no UTC date; those features
carry ``t`` and ``time_basis: "scenario"`` and a ``time_utc`` only when ``start`` (the
UTC epoch of scenario time 0) is given. Live recordings' epoch times pass through.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from fusion.messages import CLASSES
from fusion.service.stamps import EPOCH_FLOOR, Stamper
from replay.ops import geojson, kml
from replay.ops.layers import Layers
from replay.scoring.evaluate import read_result


def _times(stamper: Stamper, t: float | None, anchored: bool) -> dict[str, Any]:
    if t is None or (not anchored and t < EPOCH_FLOOR):
        return {"t": t, "time_utc": None, "time_basis": None if t is None else "scenario"}
    return {"t": t, **stamper.times(t)}


def collections(path: str | Path, start: float | None = None) -> tuple[str, dict[str, Any]]:
    """``(name, {"zones": fc, "tracks": fc, "alerts": fc})`` of a result file."""
    data = read_result(path, show_progress=False)
    meta = data.metadata.get("scenario")
    if not meta:
        raise ValueError("the file has no scenario metadata (zones and origin); "
                         "export a result of 'bufferzone replay --offline'")
    layers = Layers.from_metadata(meta)
    stamper = Stamper(layers.frame, epoch0=start)
    anchored = start is not None
    # Every picture's fixes, per track id: (t, east, north, cls, conf).
    fixes: dict[int, list[tuple[float, float, float, int, float]]] = defaultdict(list)
    for pic in data.pictures:
        for i, tid in enumerate(pic.ids.tolist()):
            fixes[int(tid)].append((pic.t, float(pic.x[i, 0]), float(pic.x[i, 1]),
                                    int(pic.cls[i]), float(pic.conf[i])))
    paths = {}
    for tid, rows in fixes.items():
        en = np.array([[r[1], r[2]] for r in rows])
        lonlat = layers.frame.to_lonlat(en)
        first, last = _times(stamper, rows[0][0], anchored), _times(stamper, rows[-1][0], anchored)
        paths[tid] = {
            "coordinates": lonlat.tolist(),
            "cls": CLASSES[rows[-1][3]] if rows[-1][3] < len(CLASSES) else "unknown",
            "conf": rows[-1][4],
            "fixes": len(rows),
            "t_start": first["t"], "t_end": last["t"],
            "time_utc_start": first["time_utc"], "time_utc_end": last["time_utc"],
            "time_basis": first["time_basis"],
        }
    # One feature per alert episode: where it opened, with how it ended.
    episodes: dict[str, dict[str, Any]] = {}
    for ev in data.alerts:
        ev = dict(ev)
        pos = ev.get("position") or {}
        if pos.get("lon") is None and pos.get("east") is not None:
            lon, lat = layers.frame.to_lonlat(np.array([pos["east"], pos["north"]]))
            ev["position"] = {**pos, "lon": float(lon), "lat": float(lat)}
        ev.update(_times(stamper, ev.get("t"), anchored))
        key = str(ev.get("alert_id"))
        if key not in episodes:
            episodes[key] = ev
        else:
            episodes[key]["last_event"] = ev.get("event")
            episodes[key]["last_time_utc"] = ev.get("time_utc")
            episodes[key]["last_t"] = ev.get("t")
    return layers.name or Path(path).stem, {
        "zones": geojson.zones_collection(layers),
        "tracks": geojson.track_paths_collection(paths),
        "alerts": geojson.alerts_collection(episodes.values()),
    }


def export_result(
    path: str | Path,
    geojson_dir: str | Path | None = None,
    kml_path: str | Path | None = None,
    start: float | None = None,
) -> list[Path]:
    """Write ``zones/tracks/alerts.geojson`` into ``geojson_dir`` and/or a KML file.

    Returns the paths written.
    """
    name, fcs = collections(path, start)
    written = []
    if geojson_dir is not None:
        out = Path(geojson_dir)
        out.mkdir(parents=True, exist_ok=True)
        for key, fc in fcs.items():
            target = out / f"{key}.geojson"
            target.write_text(json.dumps(fc, allow_nan=False, default=_plain), encoding="utf-8")
            written.append(target)
    if kml_path is not None:
        target = Path(kml_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(kml.document(name, {
            "Zones": ("zone", fcs["zones"]),
            "Tracks": ("track", fcs["tracks"]),
            "Alerts": ("alert", fcs["alerts"]),
        }))
        written.append(target)
    return written


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return None
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
