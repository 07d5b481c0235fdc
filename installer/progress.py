"""Progress bars with sizes and rates (rich when it is there) and plain one-line steps otherwise.

The installer also runs in a bare env where rich may be missing: then it prints a line per step. Step lines go to
stdout and are flushed, so a log over SSH (or a test watching for a step) sees them as they happen. With
AIRLOCK_HOLD_AT=TEXT set, the step whose message holds TEXT waits there (the kill -9 tests use it).
"""

import contextlib
import os
import sys
import time


def step(message: str) -> None:
    print(f"[airlock] {message}", flush=True)
    hold = os.environ.get("AIRLOCK_HOLD_AT")
    if hold and hold in message:  # crash tests: stop here so that their kill -9 lands at a known point
        time.sleep(3600)


@contextlib.contextmanager
def bar(description: str, total: int, enabled: bool = True):
    """Yields advance(nbytes). Shows a transfer bar (size, rate, ETA) on a terminal; silent elsewhere."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    try:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)
    except ImportError:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
