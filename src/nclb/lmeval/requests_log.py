"""The run folder of an lm-eval evaluation: one record per lm-eval request, resumable.

Records are keyed by `<lm-eval task>/<doc id>/<request index>[/r<repeat>]` and carry a
fingerprint of the request (context, continuation or stop sequences): a logged record is reused
only for the same request, so a changed prompt (another num_fewshot, say) is decoded again.

Under torchrun (nclb.runs.sharding) rank 0 holds the folder and appends to records.jsonl; each
rank appends the generate_until records of its share to its own rank file, which rank 0 folds
into records.jsonl in request order once every rank is done.
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
from nclb.runs.runlog import RECORDS, RecordWriter, read_records
from nclb.runs.sharding import Shard, shard_file
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


def same_request(record: dict[str, Any]) -> tuple[str, str | None]:
    """A record's request id and fingerprint: a record is redone when its request changed."""
    return record["id"], record.get("fingerprint")


class RequestLog:
    """Locks `folder` (on rank 0), reads its finished records, appends new ones as they finish."""

    def __init__(self, folder: Path, identity: dict[str, Any], resume: bool, shard: Shard) -> None:
        self.folder = folder
        self.shard = shard
        self.lock = RunLock(folder) if shard.leader else None
        try:
            if resume and self.lock is not None:
                stale = set_aside_stale_records(folder, identity)
                if stale is not None:
                    print(
                        f"the checkpoint is newer than {folder / RECORDS}: kept as {stale.name}",
                        file=sys.stderr,
                    )
            shard.prepare(folder, resume)  # folds in an interrupted job's rank files
            records = self.lock.records() if self.lock else read_records(folder / RECORDS)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.logged = {r["id"]: r for r in records}
        self.writer = RecordWriter(folder / RECORDS) if shard.leader else None
        self.share: RecordWriter | None = None
        self.used: dict[str, dict[str, Any]] = {}

    def lookup(self, key: str, print_: str) -> dict[str, Any] | None:
        """The logged record of request `key` if it was made for the same inputs."""
        record = self.logged.get(key)
        if record is None or record.get("fingerprint") != print_:
            return None
        self.used[key] = record
        return record

    def write(self, record: dict[str, Any]) -> None:
        """Append (and fsync) a finished request's record to records.jsonl (rank 0 only)."""
        if self.writer is None:
            raise RuntimeError("only rank 0 appends to records.jsonl")
        self.writer.write(record)
        self.keep([record])

    def write_share(self, record: dict[str, Any]) -> None:
        """Append a record of this rank's share of the requests (a world of 1: to
        records.jsonl; else to this rank's file, until `merge`)."""
        if self.shard.world == 1:
            self.write(record)
            return
        if self.share is None:
            self.share = RecordWriter(shard_file(self.folder, self.shard.rank))
        self.share.write(record)

    def merge(self, order: list[str], new: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Once every rank wrote its share (`new`: this rank's records): rank 0 appends every
        rank's records to records.jsonl in request order (ids in `order`) and returns them;
        the other ranks return None."""
        if self.share is not None:
            self.share.close()
            self.share = None
        merged = self.shard.merge(self.folder, order, new, same=same_request)
        if merged is not None:
            self.keep(merged)
        return merged

    def keep(self, records: list[dict[str, Any]]) -> None:
        """Count `records` as logged and used by this evaluation."""
        for record in records:
            self.logged[record["id"]] = record
            self.used[record["id"]] = record

    def close(self) -> None:
        """Close the records files and release the folder."""
        for writer in (self.writer, self.share):
            if writer is not None:
                writer.close()
        if self.lock is not None:
            self.lock.release()
