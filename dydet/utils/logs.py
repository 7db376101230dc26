"""Scoped trimming of Ultralytics' log lines: a filter on its LOGGER for the length of one call, never left behind."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BANNER = r"Ultralytics \d"  # the version / device line `select_device` prints on every model load


class DropLines(logging.Filter):
    """Logging filter that drops the records whose plain text (colours removed) matches one of its patterns.

    Attributes:
        patterns (list[re.Pattern]): Always dropped.
        repeats (list[re.Pattern]): Dropped after the first match of each.
        count (int): Records dropped so far.
    """

    def __init__(self, patterns: tuple[str, ...] = (), repeats: tuple[str, ...] = ()) -> None:
        """Compile the patterns (`re.match` on the message without colours and leading newlines)."""
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]
        self.repeats = [re.compile(p) for p in repeats]
        self._seen: set[int] = set()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False (drop) for a matching record, True for anything else."""
        text = ANSI.sub("", str(record.msg)).lstrip("\n")
        drop = any(p.match(text) for p in self.patterns)
        for i, p in enumerate(self.repeats):
            if not drop and p.match(text):
                drop = i in self._seen
                self._seen.add(i)
        self.count += drop
        return not drop


@contextmanager
def dropping(patterns: tuple[str, ...] = (), repeats: tuple[str, ...] = (), active: bool = True) -> Iterator[DropLines]:
    """Drop Ultralytics' log lines matching `patterns` (and the repeats of `repeats`) inside the block.

    Args:
        patterns (tuple[str, ...]): Regular expressions of lines to drop.
        repeats (tuple[str, ...]): Regular expressions of lines to print once only.
        active (bool): False: drop nothing (the caller's verbose mode).

    Yields:
        (DropLines): The filter, with its count of dropped lines.
    """
    from ultralytics.utils import LOGGER

    lines = DropLines(patterns if active else (), repeats if active else ())
    LOGGER.addFilter(lines)
    try:
        yield lines
    finally:
        LOGGER.removeFilter(lines)
