"""What long commands share: tqdm progress callbacks and the command line they record."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["bar_progress", "command_line"]


def bar_progress(bar) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives a tqdm bar."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


def command_line() -> str:
    """The command as typed, recorded in checkpoints (``anomaly-maps train ...``)."""
    return " ".join(["anomaly-maps", *sys.argv[1:]])
