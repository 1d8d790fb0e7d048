"""Sampled runs are reproducible: each example's random stream depends only on (seed, example
id), so the batch size, continuous batching and a resume give the same samples (sharding:
tests/test_sharding.py)."""

from __future__ import annotations

import json
from pathlib import Path

from nclb.config.compose import compose
from nclb.runs.runlog import RECORDS, read_records
from nclb.runs.runner import run

ARGS = [
    "model=tiny",
    "task=arith",
    "limit=12",
    "decoder=med",
    "lam=0.2",
    "temperature=2.0",
    "device=cpu",
]


def records(summary: dict) -> dict[str, dict]:
    """The run's records by id, without wall-clock fields."""
    path = Path(summary["run_dir"]) / RECORDS
    return {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in read_records(path)}


def test_batch_size_resume_and_seed(tmp_path):
    whole = records(run(compose("config", [*ARGS, "batch_size=12", f"out_dir={tmp_path / 'a'}"])))
    # Continuous batching with 5 rows in flight: the queue refills rows in another order.
    assert (
        records(run(compose("config", [*ARGS, "batch_size=5", f"out_dir={tmp_path / 'b'}"])))
        == whole
    )
    greedy = [a for a in ARGS if a != "temperature=2.0"]
    plain = records(run(compose("config", [*greedy, "batch_size=12", f"out_dir={tmp_path / 'a'}"])))
    assert [r["output"] for r in plain.values()] != [whole[i]["output"] for i in plain]
    # A run that was stopped: some records were never written; the resumed run redoes them.
    first = run(compose("config", [*ARGS, "batch_size=4", f"out_dir={tmp_path / 'c'}"]))
    path = Path(first["run_dir"]) / RECORDS
    kept = [line for i, line in enumerate(path.read_text().splitlines()) if i % 3]
    path.write_text("\n".join(kept) + "\n")
    assert len(read_records(path)) == 8
    resumed = run(compose("config", [*ARGS, "batch_size=3", f"out_dir={tmp_path / 'c'}"]))
    assert resumed["n"] == 12 and records(resumed) == whole
    other = records(
        run(compose("config", [*ARGS, "seed=1", "batch_size=12", f"out_dir={tmp_path / 'd'}"]))
    )
    assert [r["output"] for r in other.values()] != [whole[i]["output"] for i in other]
    assert json.dumps(sorted(whole)) == json.dumps(sorted(other))
