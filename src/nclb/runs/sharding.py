"""Data-parallel `nclb run` (and `nclb lm-eval`'s requests) under torchrun: examples sharded by
rank, records merged by rank 0; a process that torchrun did not start (or started alone) is rank
0 of a world of 1.

    torchrun --standalone --nproc_per_node 2 -m nclb run task=arith decoder=med lam=0.2

Every rank loads the model (on GPU `cuda:<local rank>` when the run's device is auto or cuda),
decodes every world-th example still to do, and appends its records, flushed one by one, to its
own file `records.rank<R>.jsonl` in the run folder. Once every rank is done, rank 0 appends them
to `records.jsonl` in example order, deletes the rank files and writes `summary.json`. A run
that was interrupted leaves rank files behind: the next run (any number of processes) first
moves their complete records into `records.jsonl`, so nothing is redone or duplicated. The run
folder must be on a file system that every rank sees (always true on one machine).

Processes talk through torch.distributed with the gloo backend (on the CPU: barriers and rank
0's broadcasts), which works whatever device the model is on. A world of 1 needs no process
group: it appends straight to `records.jsonl`, and its barriers are no-ops.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nclb.runs.runlog import RECORDS, RecordWriter, read_records

T = TypeVar("T")
SHARD_NAME = re.compile(r"records\.rank\d+\.jsonl")
# Ranks wait at a barrier for the slowest one; torchrun stops them all if one fails.
TIMEOUT = dt.timedelta(hours=int(os.environ.get("NCLB_DIST_TIMEOUT_HOURS", "72")))


def shard_file(folder: Path, rank: int) -> Path:
    """The records file that rank `rank` appends to."""
    return folder / f"records.rank{rank}.jsonl"


def shard_files(folder: Path) -> list[Path]:
    """The rank files in `folder` (not the side files that reading them may set beside them)."""
    return sorted(p for p in folder.glob("records.rank*.jsonl") if SHARD_NAME.fullmatch(p.name))


def consolidate(folder: Path) -> int:
    """Move the complete records of leftover rank files into records.jsonl (skipping ids already
    there), then delete the rank files. Returns how many records were moved."""
    leftovers = shard_files(folder)
    if not leftovers:
        return 0
    seen = {r["id"] for r in read_records(folder / RECORDS)}
    writer = RecordWriter(folder / RECORDS)
    moved = 0
    try:
        for path in leftovers:
            for record in read_records(path):
                if record["id"] not in seen:
                    writer.write(record)
                    seen.add(record["id"])
                    moved += 1
    finally:
        writer.close()
    for path in leftovers:
        path.unlink()
    return moved


def record_id(record: dict[str, Any]) -> Hashable:
    """A record's id: what makes two records the same example."""
    return record["id"]


@dataclass
class Shard:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_rank: int
    decoded: list[int] = field(default_factory=list)

    @property
    def leader(self) -> bool:
        """Rank 0 merges the records and writes the summary."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here (at once in a world of 1)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        dist.barrier()

    def device(self, device: str) -> str:
        """The model device of this rank: cuda:<local rank> for auto/cuda when several ranks
        share the visible GPUs (an explicit cuda:N, cpu, or a world of 1 keeps `device`)."""
        import torch

        if self.world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return device

    def prepare(self, folder: Path, resume: bool) -> None:
        """Rank 0 folds in rank files left by an interrupted run (or, with resume=false, deletes
        every records file); then every rank reads the same records.jsonl."""
        if self.leader:
            folder.mkdir(parents=True, exist_ok=True)
            if resume:
                consolidate(folder)
            else:
                for path in [folder / RECORDS, *shard_files(folder)]:
                    path.unlink(missing_ok=True)
        self.barrier()

    def split(self, items: list[T]) -> list[T]:
        """This rank's share of the examples still to do: every world-th, from its rank."""
        return items[self.rank :: self.world]

    def records_path(self, folder: Path) -> Path:
        """Where this rank appends its records (a world of 1: records.jsonl itself)."""
        return folder / RECORDS if self.world == 1 else shard_file(folder, self.rank)

    def merge(
        self,
        folder: Path,
        order: list[str],
        new: list[dict[str, Any]],
        same: Callable[[dict[str, Any]], Hashable] = record_id,
    ) -> list[dict[str, Any]] | None:
        """After every rank has finished (`new`: the records this rank wrote): rank 0 appends
        all ranks' records to records.jsonl in the examples' order (ids in `order`), but not
        those that `same` finds there already, and returns them; other ranks return None. A
        world of 1 wrote records.jsonl itself and returns `new`. `decoded` then holds how many
        records each rank wrote."""
        if self.world == 1:
            self.decoded = [len(new)]
            return new
        self.barrier()
        if not self.leader:
            return None
        shards = [read_records(shard_file(folder, rank)) for rank in range(self.world)]
        self.decoded = [len(records) for records in shards]
        gathered = [r for records in shards for r in records]
        position = {ex_id: i for i, ex_id in enumerate(order)}
        gathered.sort(key=lambda r: position.get(r["id"], len(position)))
        seen = {same(r) for r in read_records(folder / RECORDS)}
        writer = RecordWriter(folder / RECORDS)
        merged = []
        try:
            for record in gathered:
                if same(record) not in seen:
                    writer.write(record)
                    seen.add(same(record))
                    merged.append(record)
        finally:
            writer.close()
        for rank in range(self.world):
            shard_file(folder, rank).unlink(missing_ok=True)
        return merged

    def from_leader(self, value: T) -> T:
        """Rank 0's `value`, on every rank (a world of 1: `value` itself)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def leader_summary(self, path: Path) -> dict[str, Any]:
        """On a non-leading rank: wait until rank 0 has written the run's summary, then read it
        (so every rank reports the same result)."""
        self.barrier()
        return json.loads(path.read_text())


def sweep_job_device(device: str, job: int | None, gpus: int) -> str:
    """The device of sweep job number `job` when a launcher runs several jobs at once on one
    machine: cuda:<job mod gpus> for auto/cuda when `gpus` GPUs are visible (each job its own
    GPU, round robin); `device` itself for a job run alone (None), no GPU, or a set device."""
    if job is None or gpus < 1 or device not in ("auto", "cuda"):
        return device
    return f"cuda:{job % gpus}"


def join() -> Shard:
    """The Shard of this process: its rank when torchrun started it with WORLD_SIZE > 1
    (joining the gloo process group on first use), else rank 0 of a world of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard(rank=0, world=1, local_rank=0)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=TIMEOUT)
    return Shard(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def leave() -> None:
    """After a command finished on this rank: wait for every rank, then close the process group
    (a rank that exits while another still talks to it makes gloo abort that one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
