"""The progress line of long ``vigil`` runs (scan, eval, rekey, migrate-store): how far, how fast, about
how long is left.

One rule for all of them: the share done of a total known up front (the input files' bytes, the database's
rows), the counts so far, a rate, and the time left extrapolated from the share done, written to stderr at
most every few seconds. Never any message text.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TextIO

__all__ = [
    "CONVERSATIONS",
    "MIGRATE",
    "REKEY",
    "Progress",
    "Tally",
    "input_size",
    "progress_line",
    "time_left",
]

logger = logging.getLogger(__name__)

# Before this share and this time the rate is mostly warm-up (model, caches): a time left from it misleads.
MIN_FRACTION_FOR_TIME_LEFT = 0.02
MIN_SECONDS_FOR_TIME_LEFT = 3.0
_FALLBACK_COLUMNS = 80
# Seconds between progress lines, read when a ``Progress`` starts (tests set 0 to see lines on a short run).
EVERY_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    """What a progress line counts: ``(key, words)`` in printed order; ``rate_of`` also shown per second."""

    counts: tuple[tuple[str, str], ...]
    rate_of: str
    rate_unit: str


CONVERSATIONS = Tally(
    counts=(("conversations", "conversations"), ("messages", "messages")),
    rate_of="messages",
    rate_unit="msg/s",
)
MIGRATE = Tally(counts=(("rows", "rows copied"),), rate_of="rows", rate_unit="rows/s")
REKEY = Tally(
    counts=(("rows", "rows checked"), ("values", "values re-encrypted")), rate_of="rows", rate_unit="rows/s"
)


def time_left(seconds: float) -> str:
    """``about 40 s left``, ``about 2 min left``, ``about 1 h 25 min left``: as precise as an estimate is."""
    if seconds < 57.5:
        return f"about {max(5, 5 * int(seconds / 5 + 0.5))} s left"
    minutes = int(seconds / 60 + 0.5)
    if minutes < 60:
        return f"about {minutes} min left"
    hours, rest = divmod(5 * int(seconds / 300 + 0.5), 60)
    return f"about {hours} h left" if rest == 0 else f"about {hours} h {rest} min left"


def progress_line(
    *,
    label: str,
    tally: Tally,
    counts: Mapping[str, int],
    done: int,
    total: int | None,
    elapsed_s: float,
) -> str:
    """``scan: 37% · 1,234 conversations, 56,789 messages · 412 msg/s · about 2 min left``.

    Without a total (unknown, or 0: nothing to measure against) there is no share and no time left; the time
    left waits for ``MIN_FRACTION_FOR_TIME_LEFT`` of the total and ``MIN_SECONDS_FOR_TIME_LEFT``.
    """
    parts: list[str] = []
    fraction: float | None = None
    if total is not None and total > 0:
        done = max(done, 0)
        fraction = min(done / total, 1.0)
        # Integer arithmetic, rounded down: 100% only once everything is done.
        parts.append(f"{min(done * 100 // total, 100)}%")
    parts.append(", ".join(f"{counts.get(key, 0):,} {words}" for key, words in tally.counts))
    rate = counts.get(tally.rate_of, 0) / elapsed_s if elapsed_s > 0 else 0.0
    parts.append(f"{rate:,.0f} {tally.rate_unit}")
    if (
        fraction is not None
        and MIN_FRACTION_FOR_TIME_LEFT <= fraction < 1.0
        and elapsed_s >= MIN_SECONDS_FOR_TIME_LEFT
    ):
        parts.append(time_left(elapsed_s * (1.0 - fraction) / fraction))
    return f"{label}: " + " · ".join(parts)


def input_size(path: Path) -> int:
    """Bytes of an input file, or of the files under an input folder (unzipped Slack export); 0 if unknown."""
    try:
        if path.is_dir():
            return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())
        return path.stat().st_size
    except OSError as error:
        logger.debug("%s: size unknown, left out of the progress total (%s)", path, error)
        return 0


class Progress:
    """Counts a long run and writes its progress line to stderr at most every ``every_s`` (``EVERY_S``) s.

    ``tick(done=...)`` advances towards ``total`` (bytes, rows); the other keywords add to the tally's counts.
    On a terminal the line is rewritten in place with ``\\r`` (``rewrite`` overrides the guess); elsewhere (a
    log, a pipe) every update is a whole line. A run that showed any line ends with its final state on a line
    of its own (``finish``, or leaving the ``with`` block); a short run stays quiet.
    """

    def __init__(
        self,
        label: str,
        *,
        tally: Tally,
        total: int | None = None,
        every_s: float | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        rewrite: bool | None = None,
    ) -> None:
        self._label = label
        self._tally = tally
        self._total = total
        self._every_s = EVERY_S if every_s is None else every_s
        # Looked up now, not at import: tests and callers may have replaced sys.stderr since.
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._rewrite = _is_terminal(self._stream) if rewrite is None else rewrite
        self._counts = dict.fromkeys((key for key, _ in tally.counts), 0)
        self._done = 0
        self._started = clock()
        self._last_shown = self._started
        self._shown = False
        self._finished = False
        # Characters of a progress line left unfinished on the terminal (rewrite mode); 0 when none.
        self._open_width = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def count(self, key: str) -> int:
        return self._counts[key]

    def tick(self, *, done: int = 0, **counts: int) -> None:
        self._done += done
        for key, value in counts.items():
            if key not in self._counts:
                raise KeyError(
                    f"{key!r} is not one of this progress line's counts ({', '.join(self._counts)})"
                )
            self._counts[key] += value
        now = self._clock()
        if now - self._last_shown >= self._every_s:
            self._last_shown = now
            self._show(now)

    def file(self, size: int) -> FileProgress:
        """Progress through one input file of ``size`` bytes: ``read(position)`` as the reader goes (if it
        says), ``done()`` at its end; the file counts ``size`` towards the total either way."""
        return FileProgress(progress=self, size=size)

    def note(self, text: str) -> None:
        """Write ``text`` on a line of its own (a skipped record), ending an open progress line first."""
        self._end_line()
        self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Show the final state on a line of its own, if any progress line was shown; once."""
        if self._finished:
            return
        self._finished = True
        if self._shown:
            self._show(self._clock())
        self._end_line()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            # Interrupted or failed: the last line stays as it was; what follows starts on a line of its own.
            self._finished = True
            self._end_line()

    def _show(self, now: float) -> None:
        line = progress_line(
            label=self._label,
            tally=self._tally,
            counts=self._counts,
            done=self._done,
            total=self._total,
            elapsed_s=now - self._started,
        )
        self._shown = True
        # A line as wide as the terminal wraps, and "\r" would rewrite only its last row: such a one is whole.
        if self._rewrite and len(line) < _columns(self._stream):
            self._stream.write("\r" + line.ljust(self._open_width))
            self._open_width = len(line)
        else:
            self._end_line()
            self._stream.write(line + "\n")
        self._stream.flush()

    def _end_line(self) -> None:
        if self._open_width:
            self._stream.write("\n")
            self._stream.flush()
            self._open_width = 0


class FileProgress:
    """One input file's share of a ``Progress``: bytes counted as they are read, never more than its size."""

    def __init__(self, *, progress: Progress, size: int) -> None:
        self._progress = progress
        self._size = size
        self._counted = 0

    def read(self, position: int) -> None:
        self._advance(min(position, self._size))

    def done(self) -> None:
        self._advance(self._size)

    def _advance(self, position: int) -> None:
        if position > self._counted:
            self._progress.tick(done=position - self._counted)
            self._counted = position


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):  # a closed or file-less stream
        return False


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return _FALLBACK_COLUMNS
    # A terminal that never set its size (a bare pty) says 0.
    return columns if columns > 0 else _FALLBACK_COLUMNS
