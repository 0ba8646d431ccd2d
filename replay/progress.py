"""Progress bars for long replays and evaluations: tqdm on a terminal, one line otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

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
