"""Progress bars that suit where they are shown: tqdm's live bar in a terminal, and in a log
(stderr redirected to a file, CI) one plain line at a slow interval and one at the end,
instead of hundreds of carriage-return-separated bar states.

Every progress bar of earlyexp comes from :func:`progress_bar` (``envs`` is the package every
other one may import, so it lives here).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from tqdm import tqdm

#: Seconds between two lines of a bar written to a log.
LOG_INTERVAL = 30.0


class LogLines(tqdm):
    """A tqdm bar for a log: each display is one newline-terminated line, at most one every
    ``LOG_INTERVAL`` seconds, plus the bar's first and last states."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_line = -math.inf
        self._closing = False
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        super().__init__(*args, **kwargs)
        self.leave = False  # close() then displays once more, without a carriage return

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """Write the bar as one line, unless one was written less than LOG_INTERVAL ago."""
        now = time.monotonic()
        if not self._closing and now - self._last_line < LOG_INTERVAL:
            return False
        self._last_line = now
        self.fp.write(f"{self}\n")
        self.fp.flush()
        return False  # close() writes no carriage return after it

    def close(self) -> None:
        """Write the final state (a stage's end) and close."""
        self._closing = True
        super().close()


def progress_bar(*args: Any, file: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)`` in a terminal; :class:`LogLines` when ``file`` (default:
    stderr) is not a terminal."""
    stream = sys.stderr if file is None else file
    interactive = getattr(stream, "isatty", lambda: False)()
    return (tqdm if interactive else LogLines)(*args, file=stream, **kwargs)
