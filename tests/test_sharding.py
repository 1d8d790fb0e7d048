"""Data-parallel runs: two torchrun processes on gloo give the records of one process, sampled
outputs included (each example's random stream depends only on the seed and its id)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from nclb.config import resolve
from nclb.config.compose import compose
from nclb.runs.runlog import RECORDS, SUMMARY, RecordWriter, read_records
from nclb.runs.runner import run
from nclb.runs.sharding import Shard, consolidate, shard_file, shard_files
from nclb.tasks.build import build_task

ARGS = [
    "model=tiny",
    "task=arith",
    "limit=10",
    "decoder=med",
    "lam=0.2",
    "gamma=0.1",
    "temperature=2.0",
    "device=cpu",
]
TIMING = ("seconds",)


def comparable(records: list[dict]) -> dict[str, dict]:
    """Records by id, without the wall-clock fields."""
    return {r["id"]: {k: v for k, v in r.items() if k not in TIMING} for r in records}


def test_two_gloo_processes_match_one_process(tmp_path):
    sharded = tmp_path / "sharded"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "nclb", "run", *ARGS, "batch_size=4", f"out_dir={sharded}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = [p.parent for p in sharded.rglob(SUMMARY)]
    assert not shard_files(folder), "rank files should be merged away"
    summary = json.loads((folder / SUMMARY).read_text())
    assert summary["processes"] == {"world_size": 2, "decoded_per_rank": [5, 5]}

    single = run(compose("config", [*ARGS, "batch_size=3", f"out_dir={tmp_path / 'single'}"]))
    merged = read_records(folder / RECORDS)
    ids = [r["id"] for r in merged]
    assert len(ids) == len(set(ids)) == 10
    one = read_records(tmp_path / "single" / folder.relative_to(sharded) / RECORDS)
    assert comparable(merged) == comparable(one)
    order = [ex.id for ex in build_task(resolve(compose("config", ARGS)).task).examples(10)]
    assert ids == order, "rank 0 merges the records in example order"
    for key in ("n", "accuracy", "mean_nfe", "tokens_per_nfe", "exit_rate"):
        assert summary[key] == single[key], key


def record(i: int) -> dict:
    return {"id": f"ex{i}", "correct": True, "nfe": 1}


def test_leftover_rank_files_are_folded_in_once(tmp_path):
    main = RecordWriter(tmp_path / RECORDS)
    for i in (0, 1):
        main.write(record(i))
    main.close()
    r0 = RecordWriter(shard_file(tmp_path, 0))
    for i in (1, 2):  # ex1 was merged already before the interruption
        r0.write(record(i))
    r0.close()
    with shard_file(tmp_path, 0).open("a") as f:
        f.write('{"id": "ex9", "torn')  # killed mid-write: dropped, redone later
    r1 = RecordWriter(shard_file(tmp_path, 1))
    r1.write(record(3))
    r1.close()
    assert consolidate(tmp_path) == 2
    assert [r["id"] for r in read_records(tmp_path / RECORDS)] == ["ex0", "ex1", "ex2", "ex3"]
    assert not shard_files(tmp_path)
    # The torn line was set aside beside the rank file by the reader, and stays there.
    [side] = tmp_path.glob("records.rank0.set-aside-*.jsonl")
    assert '"ex9"' in side.read_text()
    assert consolidate(tmp_path) == 0


def test_ranks_take_disjoint_shares_that_cover_everything():
    items = list(range(11))
    shares = [Shard(rank=r, world=3, local_rank=r).split(items) for r in range(3)]
    assert sorted(x for share in shares for x in share) == items
    assert [len(s) for s in shares] == [4, 4, 3]


def torchrun(cwd, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*cmd, "-m", "nclb", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_a_table_under_torchrun_exits_0_on_every_rank_and_equals_one_process(tmp_path):
    table = ["table", "table2", "model=tiny", "limit=5", "device=cpu", "allow_dirty=true"]
    table += ["out_dir=runs", "results=tables"]
    (tmp_path / "two").mkdir()
    done = torchrun(tmp_path / "two", *table)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1: rank 0 wrote tables/table2.md" in done.stdout
    (tmp_path / "one").mkdir()
    single = subprocess.run(
        [sys.executable, "-m", "nclb", *table],
        cwd=tmp_path / "one",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    for name in ("table2.md", "table2.csv", "table2-gamma.csv"):
        one = (tmp_path / "one" / "tables" / name).read_text()
        assert (tmp_path / "two" / "tables" / name).read_text() == one, name


def test_a_sweep_under_torchrun_reports_the_leaders_summaries_on_every_rank(tmp_path):
    sweep = ["run", "-m", "decoder=med", "lam=0.1,0.2", "limit=5", "device=cpu", "out_dir=runs"]
    done = torchrun(tmp_path, *sweep)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no summary" not in done.stdout
    assert done.stdout.count("2 settings:") == 2, done.stdout[-3000:]  # a table per rank
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("tiny ") and "|" not in line
    ]
    assert len(rows) == 4 and len(set(rows)) == 2, rows  # each setting's row on both ranks
    assert all(re.search(r"\s5\s+\d\.\d{3}\s", row) for row in rows), rows  # n=5, an accuracy
