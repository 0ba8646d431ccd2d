"""The tracker before issue 14 (commit 32d0123), built from git history for side-by-side timing.

Issue 14's speed target compares ``Tracker.process`` at 1e3 tracks with the tracker as
it was when the issue was filed: commit ``32d0123``, the parent of the first issue-14
commit (``bef54bc``). That tracker confirmed tracks by M-of-N hits and ran one
constant-velocity filter per track; today's default scores tracks and runs an IMM.

:func:`load_pre14` takes the ``fusion`` package of that commit out of this repository's
history (``git archive``) into a temporary directory, renamed ``fusion_pre14``, and
imports it beside today's ``fusion``. The old code is never copied into the working
tree: it is rebuilt from history in each process that asks for it, and the directory
is removed at exit. Where there is no history to build it from (no git, a shallow
clone, a source tarball), :class:`BaselineUnavailable` says why, and the benchmarks
skip.

:func:`to_pre14_batch` hands a current :class:`fusion.messages.DetectionBatch` to the
old tracker: the same arrays in the old message class.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import importlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path
from typing import Any

from fusion.messages import DetectionBatch

PRE14_COMMIT = "32d01239c7b6bf89178add2473b8ed93b3618616"
PRE14_LABEL = "the tracker before issue 14 (32d0123)"
PACKAGE = "fusion_pre14"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Only these spellings of the package name are rewritten: the absolute imports, and
# module paths or package names in string literals (the package's lazy exports and
# ``importlib.resources.files("fusion")``). Prose in docstrings is left alone.
_FROM_IMPORT = re.compile(r"^(\s*)from fusion(?=[.\s])", re.MULTILINE)
_PLAIN_IMPORT = re.compile(r"^(\s*)import fusion(?=[.\s]|$)", re.MULTILINE)
_STRING_LITERAL = re.compile(r"""(["'])fusion(?=[."'])""")


class BaselineUnavailable(RuntimeError):
    """The pre-issue-14 tracker cannot be built here (no git, or the commit is missing)."""


@dataclasses.dataclass(frozen=True)
class Pre14:
    """The old package's entry points.

    Attributes
    ----------
    Tracker : type
        ``fusion_pre14.tracking.tracker.Tracker`` (M-of-N confirmation, CV filter).
    TrackerConfig : type
        Its configuration; ``Tracker()`` uses the defaults of that commit.
    DetectionBatch : type
        The old ``fusion.messages.DetectionBatch`` (no ``pd`` or ``clutter_density``).
    commit : str
        The commit it was built from.
    """

    Tracker: type
    TrackerConfig: type
    DetectionBatch: type
    commit: str


def _archive(commit: str) -> bytes:
    """The tar of ``fusion/`` at ``commit``, from this repository's history."""
    command = ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit, "fusion"]
    try:
        done = subprocess.run(command, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise BaselineUnavailable(
            f"git is not installed, so {PRE14_LABEL} cannot be built from history"
        ) from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise BaselineUnavailable(
            f"commit {commit[:7]} is not in the history at {REPO_ROOT} (a shallow clone or "
            f"a source tarball?), so {PRE14_LABEL} cannot be built: "
            f"{why[-1] if why else f'git archive exited {done.returncode}'}"
        )
    return done.stdout


def _rename_package(root: Path) -> None:
    """Point every absolute ``fusion`` import and module-path string at ``fusion_pre14``."""
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        text = _FROM_IMPORT.sub(rf"\1from {PACKAGE}", text)
        text = _PLAIN_IMPORT.sub(rf"\1import {PACKAGE}", text)
        text = _STRING_LITERAL.sub(rf"\1{PACKAGE}", text)
        path.write_text(text, encoding="utf-8")


def _check_no_leaks() -> None:
    """Fail if a loaded old module still holds anything from today's ``fusion``.

    A missed rewrite would quietly time today's code under the old name; this looks at
    every module, class and function the old modules hold.
    """
    for name, module in list(sys.modules.items()):
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        for attribute, value in vars(module).items():
            origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(
                value, "__module__", None
            )
            if isinstance(origin, str) and (origin == "fusion" or origin.startswith("fusion.")):
                raise BaselineUnavailable(
                    f"{name}.{attribute} comes from today's {origin}: the rewrite to "
                    f"{PACKAGE} missed an import"
                )


@functools.cache
def load_pre14(commit: str = PRE14_COMMIT) -> Pre14:
    """Build the old ``fusion`` package from history as ``fusion_pre14`` and import it.

    Built once per process (cached); the temporary directory goes at exit.

    Parameters
    ----------
    commit : str
        The commit whose ``fusion/`` to build; :data:`PRE14_COMMIT` by default.

    Returns
    -------
    Pre14

    Raises
    ------
    BaselineUnavailable
        When git or the commit is missing, or the renamed package still reaches into
        today's ``fusion``.
    """
    archive = _archive(commit)
    where = Path(tempfile.mkdtemp(prefix="bufferzone-pre14-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    (where / "fusion").rename(where / PACKAGE)
    _rename_package(where / PACKAGE)
    # First on the path so this copy, not a stale one elsewhere, is the one imported.
    sys.path.insert(0, str(where))
    tracker = importlib.import_module(f"{PACKAGE}.tracking.tracker")
    messages = importlib.import_module(f"{PACKAGE}.messages")
    _check_no_leaks()
    return Pre14(
        Tracker=tracker.Tracker,
        TrackerConfig=tracker.TrackerConfig,
        DetectionBatch=messages.DetectionBatch,
        commit=commit,
    )


def to_pre14_batch(batch: DetectionBatch, pre14: Pre14) -> Any:
    """The same detections as the old ``DetectionBatch``, sharing ``batch``'s arrays.

    The old class has no ``pd`` or ``clutter_density``. They are dropped when unset,
    which is what the old tracker assumed anyway (the defaults for the sensor kind);
    a batch that sets one asks for something the old tracker cannot do, so it raises
    instead of quietly timing a different job.

    Raises
    ------
    ValueError
        If ``batch`` sets a field the old class lacks.
    """
    old_fields = {f.name for f in dataclasses.fields(pre14.DetectionBatch)}
    dropped = {
        f.name: getattr(batch, f.name)
        for f in dataclasses.fields(batch)
        if f.name not in old_fields and getattr(batch, f.name) is not None
    }
    if dropped:
        raise ValueError(f"{PRE14_LABEL} has no {sorted(dropped)}; this batch sets them")
    return pre14.DetectionBatch(**{name: getattr(batch, name) for name in old_fields})


class WarmBoth:
    """Feeds every batch to today's tracker and, converted, to the pre-14 one.

    Passed as ``make`` to :func:`benchmarks.scenario.steady_tracker`, it warms both on
    exactly the same scans, so the timed rounds start from the same picture.

    Parameters
    ----------
    current : fusion.Tracker
        Today's tracker.
    pre14 : Pre14
        The old package; its default ``Tracker()`` is built here.
    """

    def __init__(self, current: Any, pre14: Pre14):
        self.current = current
        self.old = pre14.Tracker()
        self.pre14 = pre14

    def process(self, batch: DetectionBatch) -> None:
        self.current.process(batch)
        self.old.process(to_pre14_batch(batch, self.pre14))
