"""The evaluation picture: zone, truth paths, confirmed tracks, alerts, GOSPA over time."""

from __future__ import annotations

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
}


def _paths(times: list[float], ids: list[np.ndarray], x: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Positions per id over time: id -> (K_id, 2)."""
    acc: dict[int, list[np.ndarray]] = defaultdict(list)
    for k in range(len(times)):
        for i, tid in enumerate(ids[k].tolist()):
            acc[tid].append(x[k][i, :2])
    return {tid: np.array(pts) for tid, pts in acc.items()}


def write_report(ev: Evaluation, path: str | Path) -> None:
    """Draw the evaluation to a PNG.

    Top: the zone(s), every truth path (grey), every confirmed track (coloured by
    id), opened alerts as markers by kind (false ones circled). Bottom: GOSPA per
    step, and its localisation / missed / false parts (m^p, stacked).
    """
    fig = plt.figure(figsize=(14, 11), constrained_layout=True)
    grid = fig.add_gridspec(3, 1, height_ratios=[3, 1, 1])
    ax = fig.add_subplot(grid[0])
    for name, geom in ev.zones:
        polys = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
        for poly in polys:
            e, n = poly.exterior.xy
            ax.fill(e, n, color="tab:blue", alpha=0.08)
            ax.plot(e, n, color="tab:blue", lw=1)
        c = geom.centroid
        ax.annotate(name, (c.x, c.y), color="tab:blue")
    truth = _paths(list(ev.truth.times), ev.truth.ids, ev.truth.x)
    for pts in truth.values():
        ax.plot(pts[:, 0], pts[:, 1], color="0.6", lw=0.8)
    pics = ev.result.pictures
    tracks = _paths([p.t for p in pics], [p.ids for p in pics], [p.x for p in pics])
    cmap = plt.get_cmap("tab20")
    for tid, pts in tracks.items():
        ax.plot(pts[:, 0], pts[:, 1], color=cmap(tid % 20), lw=1.2)
    false_ids: set[Any] = set()
    if ev.alerts is not None:
        for ks in ev.alerts.by_kind.values():
            false_ids.update(a.alert_id for a in ks.alerts if a.outcome == "false")
    seen_kinds = set()
    for a in ev.result.alerts:
        if a.get("event") != "open":
            continue
        marker, color = _ALERT_STYLE.get(a["kind"], ("*", "tab:gray"))
        pos = a.get("position") or {}
        if pos.get("east") is None or pos.get("north") is None:
            continue
        east, north = float(pos["east"]), float(pos["north"])
        label = a["kind"] if a["kind"] not in seen_kinds else None
        seen_kinds.add(a["kind"])
        ax.scatter(
            east,
            north,
            marker=marker,
            color=color,
            s=60,
            zorder=5,
            label=label,
            edgecolors="k",
            linewidths=0.5,
        )
        if a["alert_id"] in false_ids:
            ax.scatter(
                east,
                north,
                marker="o",
                s=220,
                zorder=4,
                facecolors="none",
                edgecolors="magenta",
                linewidths=1.5,
            )
    ax.plot([], [], color="0.6", label="truth")
    ax.plot([], [], color=cmap(0), label="confirmed tracks")
    ax.scatter(
        [], [], marker="o", s=120, facecolors="none", edgecolors="magenta", label="false alert"
    )
    ax.legend(loc="upper right", fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    s = ev.summary
    ax.set_title(
        f"{s.get('scenario')} — tracker {s['tracker']}: mean GOSPA "
        f"{s['gospa']['mean']['distance']:.1f} m (c={s['gospa']['c']:g} m)"
    )

    g = ev.gospa
    ax2 = fig.add_subplot(grid[1])
    ax2.plot(ev.times, g.distance, color="k", lw=1)
    ax2.set_ylabel("GOSPA (m)")
    ax2.grid(alpha=0.3)
    ax3 = fig.add_subplot(grid[2], sharex=ax2)
    ax3.stackplot(
        ev.times,
        g.localisation,
        g.missed,
        g.false,
        labels=["localisation", "missed", "false"],
        colors=["tab:blue", "tab:red", "tab:orange"],
        alpha=0.8,
    )
    ax3.set_ylabel(f"parts (m^{s['gospa']['p']:g})")
    ax3.set_xlabel("time (s)")
    ax3.legend(loc="upper left", fontsize=8)
    ax3.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
