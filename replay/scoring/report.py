"""The evaluation page: a PNG an analyst can hand to someone who was not there.

One landscape page, readable without this code:

- a map in local metres with longitude/latitude on the opposite axes: the zones, the
  sensors and their coverage, every truth path, the confirmed tracks coloured by what
  scoring made of them (following a truth, or false), numbered alert markers, and a
  red cross wherever an incursion went without an alert;
- the scores: GOSPA and its parts, track continuity, and recall / precision /
  latency per alert kind;
- a numbered alert table (id, kind, zone, track, open time, verdict, latency) keyed
  to the map;
- GOSPA over time with its localisation / missed / false parts, incursion entries and
  alert openings marked, and the largest spikes labelled with what caused them;
- the matching rule in words.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402

from replay.scoring.evaluate import Evaluation  # noqa: E402

_ALERT_STYLE = {
    "incursion": ("^", "tab:red"),
    "predicted_incursion": ("v", "tab:orange"),
    "exit": ("s", "tab:green"),
    "lost_inside": ("X", "black"),
    "loitering": ("o", "tab:purple"),
    "probe": ("d", "tab:brown"),
}
# Kinds listed one by one in the alert table; predicted incursions are many and are
# summed up in the scores instead.
_TABLE_KINDS = ("incursion", "exit", "loitering", "lost_inside", "probe")
_TABLE_ROWS = 26
_TRACK_OK = "tab:blue"
_TRACK_FALSE = "tab:orange"
# Heights (fraction of the GOSPA panel) of the spike labels, one per label.
_SPIKE_LEVELS = (0.9, 0.72, 0.54)
_SENSOR_COLOUR = {"radar": "tab:green", "drone": "tab:cyan", "satellite": "tab:olive",
                  "ugs": "tab:brown"}


def _paths(times: list[float], ids: list[np.ndarray], x: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Positions per id over time: id -> (K_id, 2)."""
    acc: dict[int, list[np.ndarray]] = defaultdict(list)
    for k in range(len(times)):
        for i, tid in enumerate(ids[k].tolist()):
            acc[tid].append(x[k][i, :2])
    return {tid: np.array(pts) for tid, pts in acc.items()}


def _scenario(ev: Evaluation) -> Any:
    """The scenario the result came from (for its sensors), or None when not loadable."""
    meta = ev.result.metadata.get("scenario") or {}
    source = meta.get("source")
    if not source or str(source).startswith("<"):
        return None
    try:
        from sensors.scenario import load_scenario

        return load_scenario(source)
    except (OSError, ValueError):
        return None


def _frame(ev: Evaluation) -> Any:
    origin = (ev.result.metadata.get("scenario") or {}).get("origin")
    if not origin:
        return None
    from fusion.geo import LocalFrame

    return LocalFrame(float(origin[0]), float(origin[1]))


def _coverage(spec: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(coverage polygon, position or route) of one sensor spec, local metres."""
    from sensors import shapes

    kind = spec.kind
    if kind == "radar":
        r_min, r_max = spec.range
        return (
            shapes.sector(np.asarray(spec.position), r_min, r_max, spec.azimuth, spec.width),
            np.asarray(spec.position)[None, :],
        )
    if kind == "ugs":
        return shapes.circle(np.asarray(spec.position), spec.radius, 24), np.asarray(
            spec.position
        )[None, :]
    if kind == "satellite":
        return shapes.rectangle(np.asarray(spec.center), spec.heading, spec.length,
                                spec.width), None
    if kind == "drone":
        return None, np.asarray(spec.route)
    return None, None


def _draw_sensors(ax: Any, scenario: Any) -> list[str]:
    """Sensors and their coverage on the map; returns legend notes."""
    if scenario is None:
        return ["sensors: scenario file not available"]
    seen: set[str] = set()
    ugs_pos = []
    for spec in scenario.sensors:
        cover, where = _coverage(spec)
        colour = _SENSOR_COLOUR.get(spec.kind, "0.4")
        label = None if spec.kind in seen else f"{spec.kind} coverage"
        seen.add(spec.kind)
        if spec.kind == "ugs":
            if where is not None:
                ugs_pos.append(where[0])
            continue
        if cover is not None:
            ring = np.vstack([cover, cover[:1]])
            ax.fill(ring[:, 0], ring[:, 1], color=colour, alpha=0.06, zorder=0)
            ax.plot(ring[:, 0], ring[:, 1], color=colour, lw=0.6, alpha=0.6, zorder=0,
                    label=label)
            label = None
        if spec.kind == "drone" and where is not None:
            loop = np.vstack([where, where[:1]])
            ax.plot(loop[:, 0], loop[:, 1], color=colour, lw=1.0, ls="--", zorder=1,
                    label=None if "drone route" in seen else "drone route")
            seen.add("drone route")
        elif where is not None:
            ax.scatter(where[:, 0], where[:, 1], marker="P", s=70, color=colour,
                       edgecolors="k", linewidths=0.5, zorder=6,
                       label=None if f"{spec.kind}-pos" in seen else spec.kind)
            seen.add(f"{spec.kind}-pos")
            ax.annotate(spec.id, where[0], fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color=colour)
    if ugs_pos:
        pts = np.array(ugs_pos)
        ax.scatter(pts[:, 0], pts[:, 1], marker=".", s=12, color=_SENSOR_COLOUR["ugs"],
                   zorder=6, label=f"UGS ({len(pts)})")
    return []


def _sensor_points(scenario: Any) -> list[np.ndarray]:
    """Where each sensor stands or flies (not what it covers), local metres."""
    if scenario is None:
        return []
    points = [_coverage(spec)[1] for spec in scenario.sensors]
    return [p for p in points if p is not None]


def _lonlat_axes(ax: Any, frame: Any) -> None:
    """Longitude / latitude on the top and right axes (exact along the map's centre lines)."""
    if frame is None:
        return
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    north_c, east_c = (y0 + y1) / 2, (x0 + x1) / 2

    def e2lon(e: Any) -> Any:
        e = np.asarray(e, dtype=float)
        return frame.to_lonlat(np.stack([e, np.full_like(e, north_c)], axis=-1))[..., 0]

    def lon2e(lon: Any) -> Any:
        lon = np.asarray(lon, dtype=float)
        lat_c = frame.to_lonlat(np.array([east_c, north_c]))[1]
        return frame.to_local(np.stack([lon, np.full_like(lon, lat_c)], axis=-1))[..., 0]

    def n2lat(n: Any) -> Any:
        n = np.asarray(n, dtype=float)
        return frame.to_lonlat(np.stack([np.full_like(n, east_c), n], axis=-1))[..., 1]

    def lat2n(lat: Any) -> Any:
        lat = np.asarray(lat, dtype=float)
        lon_c = frame.to_lonlat(np.array([east_c, north_c]))[0]
        return frame.to_local(np.stack([np.full_like(lat, lon_c), lat], axis=-1))[..., 1]

    top = ax.secondary_xaxis("top", functions=(e2lon, lon2e))
    top.set_xlabel("longitude (°E, WGS84)")
    right = ax.secondary_yaxis("right", functions=(n2lat, lat2n))
    right.set_ylabel("latitude (°N, WGS84)")


def _verdicts(ev: Evaluation) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    if ev.alerts is not None:
        for ks in ev.alerts.by_kind.values():
            for a in ks.alerts:
                out[a.alert_id] = a
    return out


def _latency(ev: Evaluation, kind: str, alert_id: Any) -> float | None:
    if ev.alerts is None or kind not in ev.alerts.by_kind:
        return None
    for e in ev.alerts.by_kind[kind].episodes:
        if e.alert_id == alert_id:
            return e.latency
    return None


def _entry_point(ev: Evaluation, target: int, t: float) -> np.ndarray | None:
    k = int(np.searchsorted(ev.truth.times, t))
    for kk in (k, k - 1, k + 1):
        if 0 <= kk < len(ev.truth.times):
            row = np.flatnonzero(ev.truth.ids[kk] == target)
            if row.size:
                return ev.truth.x[kk][row[0], :2]
    return None


def _fmt(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec)


def _scores_text(ev: Evaluation) -> str:
    s = ev.summary
    g = s["gospa"]
    m = g["mean"]
    t = s["tracks"]
    lines = [
        f"GOSPA (c = {g['c']:g} m, p = {g['p']:g}, alpha = {g['alpha']:g}), mean of "
        f"{s['steps']} steps",
        f"  distance {_fmt(m['distance'], '.1f')} m = (localisation "
        f"{_fmt(m['localisation'], '.0f')} + missed {_fmt(m['missed'], '.0f')}"
        f" + false {_fmt(m['false'], '.0f')} m^{g['p']:g})^(1/{g['p']:g})",
        f"  {_fmt(m['n_missed'], '.1f')} truths missed, {_fmt(m['n_false'], '.1f')} false "
        "tracks per step",
        f"Tracks: {t['targets']} truths, {t['targets_tracked']} tracked, "
        f"{t['never_tracked']} never; {_fmt(t['fragmentation'], '.2f')} track ids per truth; "
        f"{t['id_switches']} id switches",
        "",
        f"{'alerts':20}{'truth':>6}{'open':>6}{'true':>6}{'false':>6}{'recall':>8}"
        f"{'precision':>10}{'latency p50/max':>17}",
    ]
    alerts = s.get("alerts") or {}
    for kind in ("incursion", "predicted_incursion", "exit", "loitering", "lost_inside", "probe"):
        k = alerts.get(kind)
        if not k:
            continue
        lat = (f"{_fmt(k['latency_median'], '.1f')} / {_fmt(k['latency_max'], '.1f')} s"
               if k.get("latency_median") is not None else "n/a")
        lines.append(
            f"{kind:20}{k['n_truth']:6d}{k['n_opened']:6d}{k['n_true']:6d}{k['n_false']:6d}"
            f"{_fmt(k['recall']):>8}{_fmt(k['precision']):>10}{lat:>17}"
        )
    if "rule" not in alerts and alerts.get("note"):
        lines.append(alerts["note"])
    for w in s.get("warnings") or ():
        lines += ["", f"WARNING: {w}"]
    return "\n".join(lines)


def _alert_rows(ev: Evaluation) -> list[dict[str, Any]]:
    verdicts = _verdicts(ev)
    rows: list[dict[str, Any]] = []
    for a in ev.result.alerts:
        if a.get("event") != "open" or a.get("kind") not in _TABLE_KINDS:
            continue
        v = verdicts.get(a["alert_id"])
        rows.append({
            "alert": a,
            "verdict": v.outcome if v is not None else "-",
            "latency": _latency(ev, a["kind"], a["alert_id"]) if v is not None else None,
        })
    rows.sort(key=lambda r: float(r["alert"]["t"]))
    for n, r in enumerate(rows, 1):
        r["n"] = n
    return rows


def _table_text(rows: list[dict[str, Any]]) -> str:
    head = f"{'#':>3} {'alert id':30}{'opened':>9}  {'verdict':10}{'latency':>8}"
    lines = [head]
    for r in rows[:_TABLE_ROWS]:
        a = r["alert"]
        lat = f"{r['latency']:+.1f} s" if r["latency"] is not None else ""
        lines.append(
            f"{r['n']:3d} {str(a['alert_id'])[:29]:30}"
            f"{float(a['t']):8.1f}s  {r['verdict']:10}{lat:>8}"
        )
    if len(rows) > _TABLE_ROWS:
        lines.append(f"    ... {len(rows) - _TABLE_ROWS} more in the --json summary")
    lines.append("")
    lines.append("alert id = <zone>:<kind>:<track>:<n> (n counts that track's alerts\n"
                 "of that kind from 0); opened: measurement time, s" if rows else "none opened")
    return "\n".join(lines)


def _spikes(ev: Evaluation, n: int = 3) -> list[tuple[float, float, str]]:
    """The ``n`` largest GOSPA peaks, well apart, with what dominated each."""
    g = ev.gospa
    if len(g) == 0:
        return []
    order = np.argsort(-g.distance, kind="stable")
    chosen: list[int] = []
    gap = max(30.0, (ev.times[-1] - ev.times[0]) / 15)
    for k in order.tolist():
        if all(abs(ev.times[k] - ev.times[j]) > gap for j in chosen):
            chosen.append(k)
        if len(chosen) == n:
            break
    out = []
    for k in chosen:
        parts = {"missed": g.missed[k], "false": g.false[k], "localisation": g.localisation[k]}
        main = max(parts, key=lambda p: parts[p])
        why = {
            "missed": f"{int(g.n_missed[k])} truths without a track",
            "false": f"{int(g.n_false[k])} tracks on no truth",
            "localisation": "position errors",
        }[main]
        out.append((float(ev.times[k]), float(g.distance[k]), why))
    return out


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def write_report(ev: Evaluation, path: str | Path) -> None:
    """Draw the evaluation to a one-page PNG (A3 landscape at 110 dpi).

    Parameters
    ----------
    ev : Evaluation
        From :func:`replay.scoring.evaluate.evaluate`.
    path : str or Path
        PNG to write.
    """
    fig = report_figure(ev)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def report_figure(ev: Evaluation) -> Any:
    """The report page as a matplotlib Figure (the caller saves and closes it)."""
    s = ev.summary
    fig = plt.figure(figsize=(16.5, 11.7))
    # Rows: the map, its legend (a row of its own, so that neither a tall map nor a
    # short one puts it over the axis labels or the GOSPA panel), GOSPA, the rule.
    grid = fig.add_gridspec(
        4, 2, height_ratios=[3.0, 0.3, 1.0, 0.4], width_ratios=[1.75, 1.0],
        left=0.05, right=0.98, top=0.9, bottom=0.03, hspace=0.42, wspace=0.12,
    )
    source = ev.result.metadata.get("source", "?")
    fig.suptitle(
        f"bufferzone evaluation: scenario {s.get('scenario')!r}, tracker {s['tracker']}, "
        f"recording {source}, t = {s['t_span'][0]:g} to {s['t_span'][1]:g} s",
        fontsize=14, fontweight="bold",
    )
    rows = _alert_rows(ev)
    legend_cell = grid[1, 0].get_position(fig)
    _draw_map(fig, fig.add_subplot(grid[0, 0]), ev, rows, (legend_cell.x0, legend_cell.y1))

    side = grid[0:2, 1].subgridspec(2, 1, height_ratios=[1.0, 1.5], hspace=0.08)
    box = fig.add_subplot(side[0])
    box.axis("off")
    box.set_title("Scores", loc="left", fontsize=11, fontweight="bold")
    box.text(0, 1, _scores_text(ev), va="top", ha="left", family="monospace", fontsize=7.6,
             transform=box.transAxes)
    table = fig.add_subplot(side[1])
    table.axis("off")
    table.set_title("Alerts opened (incursion, exit, loitering, lost inside, probe)", loc="left",
                    fontsize=11, fontweight="bold")
    table.text(0, 1, _table_text(rows), va="top", ha="left", family="monospace",
               fontsize=7.2, transform=table.transAxes)

    _draw_gospa(fig.add_subplot(grid[2, :]), ev, rows)
    foot = fig.add_subplot(grid[3, :])
    foot.axis("off")
    rule = (s.get("alerts") or {}).get("rule", "")
    foot.text(0, 1, _wrap("How alerts were scored: " + rule, 240), va="top", ha="left",
              fontsize=6.6, transform=foot.transAxes)
    return fig


def _draw_map(
    fig: Any, ax: Any, ev: Evaluation, rows: list[dict[str, Any]], legend_at: tuple[float, float]
) -> None:
    """Zones, sensors, truth, tracks, numbered alerts and missed incursions, in metres
    with longitude/latitude on the opposite axes; the legend's top left corner at
    ``legend_at`` (figure fraction)."""
    scenario = _scenario(ev)
    notes = _draw_sensors(ax, scenario)
    for name, geom in ev.zones:
        polys = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
        for poly in polys:
            e, n = poly.exterior.xy
            ax.fill(e, n, color="tab:red", alpha=0.07, zorder=1)
            ax.plot(e, n, color="tab:red", lw=1.2, zorder=1)
        c = geom.centroid
        ax.annotate(name, (c.x, c.y), color="tab:red", fontsize=10, fontweight="bold")
    truth = _paths(list(ev.truth.times), ev.truth.ids, ev.truth.x)
    for pts in truth.values():
        ax.plot(pts[:, 0], pts[:, 1], color="0.55", lw=0.7, zorder=2)
    pics = ev.result.pictures
    tracks = _paths([p.t for p in pics], [p.ids for p in pics], [p.x for p in pics])
    followed = _tracks_on_truth(ev)
    for tid, pts in tracks.items():
        ok = tid in followed
        ax.plot(pts[:, 0], pts[:, 1], color=_TRACK_OK if ok else _TRACK_FALSE,
                lw=1.1 if ok else 0.9, alpha=0.9, zorder=3)
    _draw_alerts(ax, ev, rows)
    ax.plot([], [], color="0.55", label="truth path")
    ax.plot([], [], color=_TRACK_OK, label="track following a truth")
    ax.plot([], [], color=_TRACK_FALSE, label="false track (no truth)")
    ax.scatter([], [], marker="o", s=120, facecolors="none", edgecolors="magenta",
               label="false alert")
    ax.scatter([], [], marker="X", s=100, color="red", edgecolors="k",
               label="incursion with no alert")
    ax.legend(loc="upper left", bbox_to_anchor=legend_at, bbox_transform=fig.transFigure,
              fontsize=7.5, ncol=5, framealpha=0.9, borderaxespad=0.0)
    ax.set_anchor("S")  # an equal-aspect map shorter than its row sits on its legend
    # Frame the truth (where things happen) and where the sensors stand, not the far
    # edge of every radar's reach.
    framed = list(truth.values()) + _sensor_points(scenario)
    if framed:
        every = np.vstack(framed)
        lo, hi = every.min(axis=0), every.max(axis=0)
        pad = 0.06 * (hi - lo) + 200.0
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("east of origin (m)")
    ax.set_ylabel("north of origin (m)")
    ax.grid(alpha=0.2)
    origin = (ev.result.metadata.get("scenario") or {}).get("origin")
    ax.set_title(
        "Map: local east/north metres"
        + (f" around origin lon {origin[0]:g}, lat {origin[1]:g}" if origin else "")
        + "; numbers refer to the alert table" + ("; " + "; ".join(notes) if notes else ""),
        fontsize=9,
    )
    fig.canvas.draw()  # fixes the limits the lon/lat axes are computed from
    _lonlat_axes(ax, _frame(ev))


def _draw_alerts(ax: Any, ev: Evaluation, rows: list[dict[str, Any]]) -> None:
    """Alert markers (numbered as in the table, false ones ringed) and missed incursions."""
    numbered = {r["alert"]["alert_id"]: r["n"] for r in rows}
    verdicts = _verdicts(ev)
    seen_kinds: set[str] = set()
    for a in ev.result.alerts:
        if a.get("event") != "open":
            continue
        pos = a.get("position") or {}
        if pos.get("east") is None or pos.get("north") is None:
            continue
        marker, colour = _ALERT_STYLE.get(a["kind"], ("*", "tab:gray"))
        east, north = float(pos["east"]), float(pos["north"])
        label = f"{a['kind']} alert" if a["kind"] not in seen_kinds else None
        seen_kinds.add(a["kind"])
        ax.scatter(east, north, marker=marker, color=colour, s=55, zorder=5, label=label,
                   edgecolors="k", linewidths=0.5)
        v = verdicts.get(a["alert_id"])
        if v is not None and v.outcome == "false":
            ax.scatter(east, north, marker="o", s=200, zorder=4, facecolors="none",
                       edgecolors="magenta", linewidths=1.4)
        if a["alert_id"] in numbered:
            ax.annotate(str(numbered[a["alert_id"]]), (east, north), fontsize=7,
                        xytext=(4, -9), textcoords="offset points", zorder=7)
    if ev.alerts is None or "incursion" not in ev.alerts.by_kind:
        return
    for e in ev.alerts.by_kind["incursion"].episodes:
        where = None if e.alert_id is not None else _entry_point(ev, e.target, e.t_enter)
        if where is None:
            continue
        ax.scatter(where[0], where[1], marker="X", s=160, color="red", edgecolors="k", zorder=8)
        ax.annotate(f"MISSED target {e.target}\nentered t={e.t_enter:.0f} s",
                    (float(where[0]), float(where[1])),
                    fontsize=8, color="red", xytext=(6, 6), textcoords="offset points",
                    zorder=8, fontweight="bold")


def _draw_gospa(ax2: Any, ev: Evaluation, rows: list[dict[str, Any]]) -> None:
    """GOSPA parts over time, incursion entries and alert openings, spikes explained."""
    g = ev.gospa
    ax2.stackplot(ev.times, g.localisation, g.missed, g.false,
                  labels=["localisation", "missed truths", "false tracks"],
                  colors=["tab:blue", "tab:red", "tab:orange"], alpha=0.55)
    ax2.set_ylabel(f"GOSPA parts (m^{ev.summary['gospa']['p']:g})")
    ax2.set_xlabel("time (s)")
    ax2.grid(alpha=0.3)
    ax2b = ax2.twinx()
    ax2b.plot(ev.times, g.distance, color="k", lw=1, label="GOSPA distance (m, right axis)")
    ax2b.set_ylabel("GOSPA (m)")
    for e in (ev.truth.incursions or ()):
        if ev.times.size and ev.times[0] <= e["t_enter"] <= ev.times[-1]:
            ax2.axvline(e["t_enter"], color="tab:red", lw=0.6, ls=":")
    for r in rows:
        if r["alert"]["kind"] == "incursion":
            ax2.axvline(float(r["alert"]["t"]), color="tab:red", lw=0.6, alpha=0.5)
    t0, t1 = (float(ev.times[0]), float(ev.times[-1])) if ev.times.size else (0.0, 1.0)
    # One height per label, in time order: labels of nearby spikes would otherwise be
    # drawn over each other (they are wider than the gap between the spikes).
    for level, (t, d, why) in zip(_SPIKE_LEVELS, sorted(_spikes(ev)), strict=False):
        right_half = t > t0 + 0.6 * (t1 - t0)
        ax2b.annotate(f"t={t:.0f} s: {d:.0f} m, {why}", (t, d), xycoords="data",
                      xytext=(t, level), textcoords=("data", "axes fraction"),
                      ha="right" if right_half else "left", va="center", fontsize=7.5,
                      arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.3"},
                      bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85, "lw": 0.3})
    ax2.plot([], [], color="tab:red", lw=0.6, ls=":", label="truth incursion entry")
    ax2.plot([], [], color="tab:red", lw=0.6, alpha=0.5, label="incursion alert opened")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax2b.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(0.0, -0.22), fontsize=7,
               ncol=6)
    ax2.set_title(
        "GOSPA over time: spikes are labelled with their largest part (missed: truths no "
        "track is within c of, e.g. new targets before confirmation or outside coverage; "
        "false: tracks near no truth, e.g. clutter or a track lagging a turn)",
        fontsize=9, loc="left",
    )


def _tracks_on_truth(ev: Evaluation) -> set[int]:
    """Track ids the GOSPA assignment ever put on a truth."""
    out: set[int] = set()
    pics = {round(p.t, 6): p for p in ev.result.pictures}
    for t, assignment in zip(ev.times, ev.gospa.assignments, strict=True):
        pic = pics.get(round(float(t), 6))
        if pic is None:
            continue
        hit = np.asarray(assignment)
        out.update(int(pic.ids[i]) for i in hit[hit >= 0].tolist())
    return out
