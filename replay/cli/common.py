"""What several ``bufferzone`` commands share: the ``--speed`` parser and signal handling."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def parse_speed(text: str) -> float | None:
    """``--speed`` values: a positive multiple of real time, or ``max`` (None)."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number or 'max', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0, got {text!r}")
    return value


@contextmanager
def stop_on_signals(stop: threading.Event | Callable[[], object]) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request for the duration, then restore the handlers.

    Parameters
    ----------
    stop : threading.Event or callable
        An event to set, or a function to call (for example ``TrackerService.stop``).
        Signals reach only the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    request = stop.set if isinstance(stop, threading.Event) else stop

    def handler(signum: int, _frame: object) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        request()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
