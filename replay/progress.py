"""Progress for long commands: tqdm bars for replays and evaluations, and a one-line
ticker for the open-ended ones (``sensors``, ``record``, ``track``), on a terminal only."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


@contextmanager
def progress(
    total: int | None, desc: str, unit: str = "msg", enabled: bool | None = None
) -> Iterator[_Bar]:
    """A tqdm bar on stderr, and a final summary line however it was shown.

    The bar is drawn only when stderr is a terminal (``enabled=None``), so logs and
    test output are not filled with carriage returns; the final line is printed
    either way, so a batch job still says what it did and how long it took.

    Parameters
    ----------
    total : int or None
        Expected number of items.
    desc : str
        Label in front of the bar and the final line.
    unit : str
        Name of one item.
    enabled : bool, optional
        Force the bar on or off.
    """
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    started = time.perf_counter()
    bar = _Bar(
        tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=sys.stderr,
            disable=not show,
            dynamic_ncols=True,
            mininterval=0.25,
            unit_scale=unit == "B",
        )
    )
    try:
        yield bar
    finally:
        bar.bar.close()
        elapsed = time.perf_counter() - started
        count = f"{bar.n / 1e6:.1f} MB" if unit == "B" else f"{bar.n} {unit}"
        print(f"{desc}: {count} in {elapsed:.1f} s", file=sys.stderr, flush=True)


class _Bar:
    """A tqdm bar that counts even when it is not drawn (a disabled tqdm does not)."""

    def __init__(self, bar: tqdm):
        self.bar = bar
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n
        self.bar.update(n)


@contextmanager
def ticker(
    line: Callable[[], str],
    interval: float = 2.0,
    stream: IO[str] | None = None,
    enabled: bool | None = None,
) -> Iterator[None]:
    """Rewrite one status line on a terminal every ``interval`` seconds while the body runs.

    Commands that run until stopped would otherwise print nothing between their start
    and their end, and a user cannot tell a working recorder from a stuck one. Off a
    terminal (logs, pipes, tests) it prints nothing, so output stays line-oriented.

    Parameters
    ----------
    line : callable
        Returns the current status, one line; called from a background thread, so it
        should only read counters.
    interval : float
        Seconds between updates.
    stream : text stream, optional
        Where to write (default ``sys.stderr``).
    enabled : bool, optional
        Force it on or off (default: on when ``stream`` is a terminal).
    """
    out = stream or sys.stderr
    show = out.isatty() if enabled is None else enabled
    if not show:
        yield
        return
    done = threading.Event()
    width = [0]

    def draw() -> None:
        text = line()
        out.write("\r" + text.ljust(width[0]))
        out.flush()
        width[0] = len(text)

    def loop() -> None:
        while not done.wait(interval):
            try:
                draw()
            except Exception:  # a status line must never take the command down
                return

    thread = threading.Thread(target=loop, name="progress-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=interval + 1.0)
        if width[0]:
            out.write("\n")
            out.flush()
