"""Run-folder locks: one process at a time appends to a run folder's records."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from nclb.runs.runlog import RECORDS, Schema, read_records

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
    that dies is released by the operating system. Releasing deletes the lock file (and the
    folder, with the parents this lock created, when nothing else is in them); a process that
    was waiting on the deleted file sees that it is gone and locks the new one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        waited = False
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                file = (self.folder / LOCK).open("a")
            except FileNotFoundError:  # the folder was just removed by a releasing process
                continue
            if fcntl is not None:
                try:
                    fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    if not waited:
                        print(
                            f"waiting for another process that is running {folder}", file=sys.stderr
                        )
                        waited = True
                    fcntl.lockf(file, fcntl.LOCK_EX)
            if self.holds(file):
                break
            file.close()  # locked a lock file that its holder deleted on release: take the new one
        self.file = file
        self.announced = False

    def holds(self, file: Any) -> bool:
        """Whether the open `file` is still the folder's lock file (not deleted or replaced)."""
        try:
            on_disk = (self.folder / LOCK).stat()
        except FileNotFoundError:
            return False
        mine = os.fstat(file.fileno())
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def records(
        self, schema: Schema | None = None, known: Collection[Any] | None = None
    ) -> list[dict[str, Any]]:
        """The records of the folder's records.jsonl that a run resumes from (read_records, with
        `schema` and `known` ids when given); the first time there are some, one line says how
        many are kept."""
        records = read_records(self.folder / RECORDS, schema=schema, known=known)
        if records and not self.announced:
            self.announced = True
            print(
                f"resuming {len(records)} logged examples in {self.folder} (not redone; "
                "resume=false starts over)",
                file=sys.stderr,
            )
        return records

    def release(self) -> None:
        """Delete the lock file while still holding it, remove the folder and the parents this
        lock created if they are empty, then release the lock (closing the file releases it)."""
        file = getattr(self, "file", None)
        if file is None or file.closed:
            return
        try:
            # stops at a folder that is not empty (the run's files), or a lock file that
            # cannot be deleted (Windows: open)
            with contextlib.suppress(OSError):
                (self.folder / LOCK).unlink(missing_ok=True)
                for folder in [self.folder, *self.created[1:]]:
                    folder.rmdir()
        finally:
            file.close()

    def __del__(self) -> None:
        self.release()
