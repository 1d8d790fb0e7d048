"""Run-folder locks: one process at a time appends to a run folder's records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nclb.runs.runlog import RECORDS, read_records

try:
    import fcntl
except ImportError:  # Windows: no run-folder locking
    fcntl = None

LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run folder, taken before its records are read and released once
    its summary is written, so two processes never append to the same records file at once.

    Two jobs of a sweep that differ only in settings outside the run identity (limit,
    batch_size, device) share a folder: the second waits here, then resumes from the first's
    records. POSIX record locks (fcntl.lockf) also work on NFS; a lock still held by a process
    that dies is released by the operating system.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.file = (folder / LOCK).open("a")
        if fcntl is not None:
            try:
                fcntl.lockf(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                print(f"waiting for another process that is running {folder}", file=sys.stderr)
                fcntl.lockf(self.file, fcntl.LOCK_EX)
        self.announced = False

    def records(self) -> list[dict[str, Any]]:
        """The records of the folder's records.jsonl (read_records) that a run resumes from;
        the first time there are some, one line says how many are kept."""
        records = read_records(self.folder / RECORDS)
        if records and not self.announced:
            self.announced = True
            print(
                f"resuming {len(records)} logged examples in {self.folder} (not redone; "
                "resume=false starts over)",
                file=sys.stderr,
            )
        return records

    def release(self) -> None:
        """Release the lock (closing the file releases it too)."""
        file = getattr(self, "file", None)
        if file is not None and not file.closed:
            file.close()

    def __del__(self) -> None:
        self.release()
