"""Lines from a child process's pipe, every read bounded by a deadline.

``select`` on a pipe and then ``readline()`` on its text wrapper loses lines: the
wrapper reads a whole chunk, hands back the first line and keeps the rest in its own
buffer, where ``select`` (which looks at the descriptor) cannot see it. Two lines
written together then look like one. ``PipeLines`` reads the descriptor itself and
splits the lines here, so nothing it has read is hidden from the next wait.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import IO


class PipeLines:
    """Reads whole lines from ``stream`` (a child's stdout or stderr)."""

    def __init__(self, stream: IO):
        self.fd = stream.fileno()
        self.pending = b""
        self.seen: list[str] = []

    def until(self, wanted: Callable[[str], bool], deadline: float) -> str:
        """The first line (from now on) for which ``wanted(line)`` holds.

        Fails the test when ``deadline`` (a ``time.monotonic()`` value) passes or the
        pipe closes first, listing every line seen so far.
        """
        while True:
            while b"\n" in self.pending:
                raw, self.pending = self.pending.split(b"\n", 1)
                line = raw.decode("utf-8", "replace") + "\n"
                self.seen.append(line)
                if wanted(line):
                    return line
            left = deadline - time.monotonic()
            assert left > 0, f"never saw the line; got {self.seen}"
            if not select.select([self.fd], [], [], left)[0]:
                continue
            chunk = os.read(self.fd, 65536)
            assert chunk, f"the pipe closed; got {self.seen}"
            self.pending += chunk
