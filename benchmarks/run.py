"""Run the hot-path benchmarks and write the results table (``make bench``).

``python -m benchmarks.run [extra pytest args]`` runs ``benchmarks/test_hot_path.py``
and ``benchmarks/test_alert_engine.py`` with
``--benchmark-json=benchmarks/results/hot_path.json`` (soak cases included), then
writes ``benchmarks/results/hot_path.md``: one row per case with the median, the
inter-quartile range, calls and detections per second, the filterpy-loop baseline
of the same group and size, the speed-up and the target where the brief sets one,
then the alert engine's time per scan against the tracker's on the same scans (the
ratio of medians; target <= 0.5), the 1e3-track scan with the IMM on against off (the
ratio of medians; target <= 1.2), today's default tracker against the tracker before
issue 14 (commit 32d0123, rebuilt from history by :mod:`benchmarks.pre14`) on the same
1e3-track scans interleaved round by round (target <= 1.2), followed by the memory
figures and the machine. The issue 14 figures (drone frame, IMM on/off and their
ratio, against pre-14, 1e4 and 1e5 scans) are printed last, each with its target.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy

from benchmarks.pre14 import PRE14_LABEL

RESULTS = Path(__file__).parent / "results"
JSON_PATH = RESULTS / "hot_path.json"
MD_PATH = RESULTS / "hot_path.md"

# (group, nominal n) -> target median, milliseconds
TARGETS_MS = {
    ("tracker", 1_000): 3.0,
    ("tracker", 10_000): 30.0,
    ("tracker", 100_000): 400.0,
    ("small batch", 1_000): 0.3,
}
GROUP_ORDER = ["predict", "update", "gating", "assignment", "tracker", "small batch", "memory"]
# Alert engine time per scan / tracker time per scan, same scans: at most this.
ENGINE_RATIO_TARGET = 0.5
# 1e3-track scan with the IMM on / the same scans with it off: at most this.
IMM_RATIO_TARGET = 1.2
# 1e3-track scan, today's default tracker / the tracker before issue 14, same scans
# interleaved: at most this (issue 14's speed target).
PRE14_RATIO_TARGET = 1.2
# The drone frame, same comparison: issue 14's 0.3 ms against the 0.82 ms of its day.
PRE14_DRONE_RATIO_TARGET = 0.37


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_suite(extra: list[str]) -> list[str]:
    """Run pytest on the benchmarks; returns the command line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        str(Path(__file__).parent / "test_hot_path.py"),
        str(Path(__file__).parent / "test_alert_engine.py"),
        f"--benchmark-json={JSON_PATH}", "--benchmark-columns=min,median,iqr,ops,rounds",
        *extra,
    ]
    subprocess.run(command, check=True)
    return command


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def table(benchmarks: list[dict]) -> list[str]:
    """Markdown rows: one per bufferzone case, with its group's baseline beside it."""
    baseline = {
        (b["group"], b["extra_info"]["n"]): b["stats"]["median"]
        for b in benchmarks
        if b["extra_info"].get("role") == "baseline"
    }
    rows = [
        "| case | N | median ms | IQR ms | ops/s | detections/s | baseline median ms "
        "| speed-up | target ms | met? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ours = [b for b in benchmarks if b["extra_info"].get("role") == "bufferzone"]
    ours.sort(key=lambda b: (GROUP_ORDER.index(b["group"]), b["extra_info"]["n"]))
    for b in ours:
        key = (b["group"], b["extra_info"]["n"])
        median = b["stats"]["median"]
        detections = b["extra_info"].get("detections", 0)
        base = baseline.get(key)
        target = TARGETS_MS.get(key)
        rows.append(
            "| {} | {:,} | {} | {} | {:,.0f} | {} | {} | {} | {} | {} |".format(
                b["group"], key[1], fmt_ms(median), fmt_ms(b["stats"]["iqr"]),
                1.0 / median, f"{detections / median:,.0f}" if detections else "",
                fmt_ms(base), f"{base / median:,.1f}x" if base else "",
                f"{target:g}" if target else "",
                ("yes" if median * 1e3 <= target else f"no (+{median * 1e3 / target - 1:.0%})")
                if target else "",
            )
        )
    return rows


def ratio_lines(benchmarks: list[dict], group: str, roles: tuple[str, str],
                labels: tuple[str, str], title: str, target: float) -> list[str]:
    """Two benchmarks of one group (by ``extra_info["role"]``), their medians and ratio."""
    by_role = {b["extra_info"].get("role"): b["stats"] for b in benchmarks if b["group"] == group}
    if any(role not in by_role for role in roles):
        return []
    (top, bottom), (top_label, bottom_label) = roles, labels
    ratio = by_role[top]["median"] / by_role[bottom]["median"]
    rows = [f"| {label} | {fmt_ms(by_role[role]['median'])} | {fmt_ms(by_role[role]['iqr'])} |"
            for role, label in zip(roles, labels, strict=True)]
    return [title, "", "| case | median ms | IQR ms |", "|---|---:|---:|", *rows, "",
            f"{top_label} / {bottom_label}: {ratio:.2f} "
            f"(target <= {target}: {'yes' if ratio <= target else 'no'})."]


def engine_lines(benchmarks: list[dict]) -> list[str]:
    """The alert engine against the tracker on the same scans, and their ratio.

    Then the ratios within each case, where the other half was timed in the same rounds
    (``extra_info["paired_median"]``, see ``benchmarks/test_alert_engine.py``): load
    that changes between the two cases moves the headline ratio, not these.
    """
    lines = ratio_lines(
        benchmarks, "alert engine", ("engine", "tracker"), ("AlertEngine.step", "Tracker.process"),
        "Alert engine (1e3 confirmed tracks, one 3 km strip zone, shipped rules; "
        "`benchmarks/test_alert_engine.py`), per scan, same scans:", ENGINE_RATIO_TARGET)
    by_role = {b["extra_info"].get("role"): b for b in benchmarks if b["group"] == "alert engine"}
    paired = []
    for role, other in (("engine", "tracker"), ("tracker", "engine")):
        case = by_role.get(role)
        other_s = case and case["extra_info"].get("paired_median")
        if other_s:
            times = {role: case["stats"]["median"], other: other_s}
            ratio = times["engine"] / times["tracker"]
            paired.append(f"{role} case {fmt_ms(times['engine'])} / {fmt_ms(times['tracker'])} ms "
                          f"= {ratio:.2f}")
    if paired:
        lines.append("Interleaved in the same rounds (engine / tracker): " + "; ".join(paired)
                     + f" (target <= {ENGINE_RATIO_TARGET}).")
    return lines


def imm_lines(benchmarks: list[dict]) -> list[str]:
    """The 1e3-track scan with the IMM on and off, and the ratio of their medians."""
    return ratio_lines(
        benchmarks, "imm vs cv", ("imm", "cv"), ("IMM on", "IMM off"),
        "IMM on (the default) against off (`TrackerConfig(imm=False)`), 1e3 tracks, "
        "same scans, run one after the other:", IMM_RATIO_TARGET)


def pre14_lines(benchmarks: list[dict], group: str = "tracker vs pre-14") -> list[str]:
    """Today's default tracker against the tracker before issue 14, interleaved.

    One row per case of ``test_tracker_vs_pre14`` (``group`` "tracker vs pre-14", the
    1e3 scan) or ``test_small_batch_vs_pre14`` ("small batch vs pre-14", the drone
    frame): each timed one tracker with the benchmark and the other on the same input
    in its setup (``extra_info["paired_median"]``), the two cases in either order. The
    last line is the verdict: met when both cases' ratios are within the target.
    """
    scan = group == "tracker vs pre-14"
    target = PRE14_RATIO_TARGET if scan else PRE14_DRONE_RATIO_TARGET
    what = "1e3 scan" if scan else "drone frame (10 detections) vs 1e3 tracks"
    cases = {b["extra_info"].get("role"): b for b in benchmarks if b["group"] == group}
    rows: list[str] = []
    ratios: list[str] = []
    met: list[bool] = []
    counts = None
    imm_off = None
    for role, label in (("current", "current timed, pre-14 in its setup"),
                        ("pre14", "pre-14 timed, current in its setup"),
                        ("imm-off", "IMM off timed, pre-14 in its setup (not a target)")):
        case = cases.get(role)
        if case is None or not case["extra_info"].get("paired_median"):
            continue  # not run, or run with benchmarks off (no timings)
        timed, other = ("pre14", "current") if role == "pre14" else ("current", "pre14")
        times = {timed: case["stats"]["median"], other: case["extra_info"]["paired_median"]}
        ratio = times["current"] / times["pre14"]
        if role == "imm-off":
            imm_off = ratio
            rows.append(f"| {label} | {fmt_ms(times['current'])} | {fmt_ms(times['pre14'])} "
                        f"| {ratio:.2f} | | |")
            continue
        ratios.append(f"{ratio:.2f} ({timed.replace('pre14', 'pre-14')} timed)")
        if "confirmed_current" in case["extra_info"]:
            counts = (case["extra_info"]["confirmed_current"],
                      case["extra_info"]["confirmed_pre14"])
        rows.append(f"| {label} | {fmt_ms(times['current'])} | {fmt_ms(times['pre14'])} "
                    f"| {ratio:.2f} | <= {target} "
                    f"| {'yes' if ratio <= target else 'no'} |")
        met.append(ratio <= target)
    if not rows:
        return []
    if scan:
        title = ("Tracker.process at 1e3 tracks, current default (score lifecycle + IMM) "
                 f"against {PRE14_LABEL}, same scans, interleaved in every round "
                 "(`test_tracker_vs_pre14`; the old tracker is rebuilt from git history):")
    else:
        title = ("The 10-detection drone frame against 1e3 tracks, current default against "
                 f"{PRE14_LABEL}, both restored to the same warmed state every round, "
                 "interleaved (`test_small_batch_vs_pre14`). Issue 14 asked for 0.3 ms when "
                 "that tracker took 0.82 ms: the target is that ratio, 0.37, on any machine:")
    return [
        title,
        "",
        "| case | current median ms | pre-14 median ms | current / pre-14 | target | met? |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        *([f"Confirmed tracks after the warm-up scans (1,000 targets): current {counts[0]:,}, "
           f"pre-14 {counts[1]:,} (M-of-N confirmation)."] if counts else []),
        *([f"With the IMM off, today's tracker takes {imm_off:.2f}x the old one's time "
           f"on the same scans: the 1.2x target leaves the IMM the rest."]
          if imm_off is not None else []),
        f"{what}, current / pre-14 (32d0123), interleaved: "
        + ", ".join(ratios)
        + f" (target <= {target}: {'yes' if all(met) else 'no'}).",
    ]


def summary_lines(benchmarks: list[dict]) -> list[str]:
    """The issue 14 figures, one line each with its target."""
    medians = {
        (b["group"], b["extra_info"]["n"], b["extra_info"].get("role")): b["stats"]["median"]
        for b in benchmarks
    }
    lines = []
    for label, group, n in [
        ("drone frame (10 detections) vs 1e3 tracks", "small batch", 1_000),
        ("1e3 scan", "tracker", 1_000),
        ("1e4 scan", "tracker", 10_000),
        ("1e5 scan", "tracker", 100_000),
    ]:
        median = medians.get((group, n, "bufferzone"))
        if median is None:
            continue
        target = TARGETS_MS.get((group, n))
        met = "yes" if target and median * 1e3 <= target else "no"
        lines.append(f"{label}: {median * 1e3:.3f} ms (target <= {target:g} ms: {met})")
    return (lines + imm_lines(benchmarks)[-1:] + pre14_lines(benchmarks)[-1:]
            + pre14_lines(benchmarks, "small batch vs pre-14")[-1:])


def memory_lines(benchmarks: list[dict]) -> list[str]:
    lines = []
    for b in benchmarks:
        info = b["extra_info"]
        if b["group"] == "memory":
            lines += [
                f"- 1e5-track run ({info['live_tracks']:,} live tracks): track table "
                f"{info['bytes_per_track']:.0f} bytes per live track "
                f"({info['table_bytes_per_row']:.0f} per allocated row; capacity doubles), "
                f"peak traced memory (tracemalloc, warm-up + 3 scans) "
                f"{info['peak_traced_mb']:.0f} MiB, process max RSS {info['max_rss_mb']:.0f} MiB.",
            ]
        elif b["group"] == "tracker" and "bytes_per_track" in info:
            lines.append(
                f"- tracker N = {info['n']:,}: "
                f"{info['bytes_per_track']:.0f} table bytes per live track."
            )
    return lines


def write_report(command: list[str]) -> None:
    data = json.loads(JSON_PATH.read_text())
    benchmarks = data["benchmarks"]
    shown = " ".join(shlex.quote(c) for c in ["python", "-m", "benchmarks.run", *sys.argv[1:]])
    lines = [
        "# Hot-path benchmarks",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}; load average at the end "
        f"{os.getloadavg()[0]:.2f} (other work on the machine widens the IQRs).",
        "",
        f"Command: `{shown}` (runs `{' '.join(command[1:4])} benchmarks/test_hot_path.py "
        f"benchmarks/test_alert_engine.py --benchmark-json=benchmarks/results/hot_path.json`).",
        "",
        "Steady state: targets ~1 per km^2 (`side = sqrt(N) * 1000` m), velocity "
        "N(0, 5 m/s), 10 m noise, R = 100 I, 2 % clutter, 8 warm-up scans; one fresh scan "
        "per round. Small batch: a 10-detection drone frame with its footprint polygon "
        "against 1e3 live tracks. Baseline: one filterpy KalmanFilter per track "
        "(`replay/baseline.py`), dense gating and assignment (up to N = 1e3 "
        "for those two, 1e4 for the filters).",
        "",
        *table(benchmarks),
        "",
        *engine_lines(benchmarks),
        "",
        *imm_lines(benchmarks),
        "",
        *pre14_lines(benchmarks),
        "",
        *pre14_lines(benchmarks, "small batch vs pre-14"),
        "",
        "Memory:",
        "",
        *memory_lines(benchmarks),
        "",
    ]
    MD_PATH.write_text("\n".join(lines))
    print(MD_PATH.read_text())


def main() -> None:
    command = run_suite(sys.argv[1:])
    write_report(command)
    data = json.loads(JSON_PATH.read_text())
    engine = engine_lines(data["benchmarks"])
    ratios = engine[len(engine) - engine[::-1].index(""):]  # the lines after the table
    for line in ratios + summary_lines(data["benchmarks"]):
        print(line)


if __name__ == "__main__":
    main()
