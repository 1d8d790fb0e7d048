"""The run folder of an lm-eval evaluation: one record per lm-eval request, resumable.

Records are keyed by `<lm-eval task>/<doc id>/<request index>[/r<repeat>]` and carry a
fingerprint of the request (context, continuation or stop sequences): a logged record is reused
only for the same request, so a changed prompt (another num_fewshot, say) is decoded again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from nclb.config.settings import RunSettings
from nclb.runs.identity import run_dir, settings_identity
from nclb.runs.lock import RunLock
from nclb.runs.runlog import RECORDS, RecordWriter
from nclb.runs.stale import set_aside_stale_records


def run_folder(settings: RunSettings, harness: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """(run folder, identity) of an evaluation: nclb's run identity with the lm-eval settings
    (`harness`) added to the task, under `out_dir/<model>/<task>/<decoder>-<hash>`."""
    s = dataclasses.replace(settings, task={**settings.task, "lm_eval": harness})
    identity = settings_identity(s)
    return run_dir(s.out_dir, identity), identity


def fingerprint(*parts: Any) -> str:
    """A short hash of a request's inputs."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def request_keys(requests: list[Any]) -> list[tuple[str, int]]:
    """(record id, repeat) of each lm-eval Instance; lm-eval passes one object `repeats` times
    in a row, so its later copies (repeat >= 1) get a repeat suffix."""
    seen: dict[int, int] = {}
    keys = []
    for req in requests:
        count = seen.get(id(req), 0)
        seen[id(req)] = count + 1
        base = f"{req.task_name}/{req.doc_id}/{req.idx}"
        keys.append((base if count == 0 else f"{base}/r{count}", count))
    return keys


class RequestLog:
    """Locks `folder`, reads its finished records, appends new ones as they finish."""

    def __init__(self, folder: Path, identity: dict[str, Any], resume: bool) -> None:
        self.folder = folder
        self.lock = RunLock(folder)
        path = folder / RECORDS
        if resume:
            stale = set_aside_stale_records(folder, identity)
            if stale is not None:
                print(f"the checkpoint is newer than {path}: kept as {stale.name}", file=sys.stderr)
        elif path.exists():
            path.unlink()
        self.logged = {r["id"]: r for r in self.lock.records()}
        self.writer = RecordWriter(path)
        self.used: dict[str, dict[str, Any]] = {}

    def lookup(self, key: str, print_: str) -> dict[str, Any] | None:
        """The logged record of request `key` if it was made for the same inputs."""
        record = self.logged.get(key)
        if record is None or record.get("fingerprint") != print_:
            return None
        self.used[key] = record
        return record

    def write(self, record: dict[str, Any]) -> None:
        """Append (and fsync) a finished request's record."""
        self.writer.write(record)
        self.logged[record["id"]] = record
        self.used[record["id"]] = record

    def close(self) -> None:
        """Close the records file and release the folder."""
        self.writer.close()
        self.lock.release()
