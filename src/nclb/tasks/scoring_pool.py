"""Scoring beside the decode loop: slow scorers (HumanEval's sandbox) run in worker threads.

`submit(make)` hands over a function that builds one finished example's record (scoring it);
it returns at once, so the decode loop's step times never include scoring. Records are passed to
`write` in submission order, each as soon as it and every earlier one are scored, from whichever
thread finished last (under a lock, so `write` is never called twice at once). `close()` waits
for everything submitted, so an interrupted run (Ctrl-C) still logs every record it scored.

A task opts in with a `scoring_workers` attribute (> 0); otherwise records are built inline in
the caller's thread, exactly as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Record = dict[str, Any]


def scoring_workers(task: object) -> int:
    """How many examples `task` scores at once beside the decode loop (0: inline)."""
    return int(getattr(task, "scoring_workers", 0) or 0)


class ScoringPool:
    """Builds records with `workers` threads (0: inline) and writes them in submission order."""

    def __init__(self, workers: int, write: Callable[[Record], None]) -> None:
        self.workers, self.write = workers, write
        self._threads = ThreadPoolExecutor(workers, "nclb-score") if workers > 0 else None
        self._lock = threading.Lock()
        self._pending: list[Future] = []  # submitted, not yet written, in submission order
        self._error: BaseException | None = None

    def submit(self, make: Callable[[], Record]) -> Future:
        """Build (and score) one record beside the caller; it is written when its turn comes."""
        if self._error is not None:
            raise self._error
        if self._threads is None:
            future: Future = Future()
            future.set_result(make())
            with self._lock:
                self._pending.append(future)
            self._flush()
            return future
        future = self._threads.submit(make)
        with self._lock:
            self._pending.append(future)
        future.add_done_callback(lambda _: self._flush())
        return future

    def _flush(self) -> None:
        """Write the scored records at the head of the queue (in order)."""
        with self._lock:
            while self._pending and self._pending[0].done():
                future = self._pending.pop(0)
                error = future.exception()
                if error is not None:
                    self._error = self._error or error
                    continue
                self.write(future.result())

    @property
    def in_flight(self) -> int:
        """Records submitted and not yet written."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Wait for every submitted record, write them, stop the threads; re-raise a scorer's
        error (after writing every record that did score)."""
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        self._flush()
        if self._error is not None:
            raise self._error
