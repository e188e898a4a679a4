"""Progress bars: a live tqdm bar in a terminal, a few plain lines in a log."""

from __future__ import annotations

import io

from tqdm import tqdm

from envs import progress
from envs.progress import LogLines, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_first_and_a_last_line_and_no_carriage_returns() -> None:
    log = io.StringIO()
    with progress_bar(total=1000, desc="bc", file=log) as bar:
        assert isinstance(bar, LogLines)
        for _ in range(1000):
            bar.update()
            bar.set_postfix(acc="0.5")  # refreshes, as validations do
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2, lines  # the start and the end: the run took under LOG_INTERVAL
    assert lines[0].startswith("bc:") and "1000/1000" in lines[1]


def test_a_log_gets_a_line_per_interval(monkeypatch) -> None:
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)
    log = io.StringIO()
    bar = progress_bar(total=3, desc="x", file=log, mininterval=0)
    for _ in range(3):
        bar.update()
    bar.close()
    assert len(log.getvalue().splitlines()) == 5  # start, 3 updates, end


def test_a_terminal_gets_tqdms_live_bar() -> None:
    bar = progress_bar(total=3, file=_Terminal())
    assert type(bar) is tqdm
    bar.close()


def test_a_disabled_bar_writes_nothing() -> None:
    log = io.StringIO()
    for _ in progress_bar(range(5), file=log, disable=True):
        pass
    assert log.getvalue() == ""
