"""The `nclb` command end to end on the oracle: logs, resume, sweeps and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nclb.runs.runlog import read_records

NCLB = [sys.executable, "-c", "from nclb.cli import main; main()"]


def nclb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`nclb *args` on the oracle and its toy task unless args pick a model or task."""
    picked = any(a.split("=")[0] in ("model", "task") for a in args)
    defaults = [] if picked or args[:1] != ("run",) else ["model=oracle", "task=toy"]
    return subprocess.run(
        [*NCLB, *args, *defaults], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_run_writes_records_and_summary(tmp_path):
    out = tmp_path / "runs"
    r = nclb(
        "run",
        "decoder=med",
        "lam=0.2",
        "limit=20",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "acc=" in r.stdout and "nfe=" in r.stdout
    summary_path = next(out.rglob("summary.json"))
    summary = json.loads(summary_path.read_text())
    assert summary["n"] == 20 and 0 <= summary["accuracy"] <= 1 and summary["mean_nfe"] > 0
    assert summary["config"]["decoder"]["name"] == "med" and summary["git"]
    records = read_records(summary_path.parent / "records.jsonl")
    assert len(records) == 20
    keys = {
        "id",
        "prompt",
        "output",
        "prediction",
        "gold",
        "correct",
        "nfe",
        "gen_tokens",
        "seconds",
        "exit_step",
    }
    assert keys <= set(records[0])
    assert sum(r["correct"] for r in records) / 20 == summary["accuracy"]


def test_resume_skips_finished_examples(tmp_path):
    out = tmp_path / "runs"
    assert (
        nclb(
            "run",
            "limit=5",
            "decoder=ktoken",
            "k=2",
            "temperature=1",
            f"out_dir={out}",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    path = next(out.rglob("records.jsonl"))
    first = read_records(path)
    with path.open("a") as f:
        f.write('{"id": "toy-5", "trunc')  # a record torn by a kill
    assert (
        nclb(
            "run",
            "limit=9",
            "decoder=ktoken",
            "k=2",
            "temperature=1",
            f"out_dir={out}",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    records = read_records(path)
    assert [r["id"] for r in records] == [f"toy-{i}" for i in range(9)]
    assert records[:5] == first


def test_multirun_sweep_gives_one_folder_per_setting(tmp_path):
    out = tmp_path / "runs"
    r = nclb("run", "-m", "decoder=med", "lam=0.0,0.5", "limit=4", f"out_dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list(out.rglob("summary.json"))) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["decoder=med", "lam=-1"], "lam"),
        (["decoder=nope"], "decoder=nope is unknown"),
        (["model=nope"], "model=nope is unknown"),
        (["fooo=1"], "fooo"),
        (["decoder=ktoken", "k=0"], "k=0"),
        (["decoder=med", "k=2"], "k=2 does not apply"),
        (["gamma=0.1"], "gamma"),
        pytest.param(
            ["device=cuda"],
            "cuda",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible"),
        ),
        (["-m", "decoder=med", "lam=0.1,-2"], "lam"),
        (["batch_size=0"], "batch_size"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, needle):
    r = nclb("run", *args, f"out_dir={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_no_overrides_runs_the_embedded_tiny_model(tmp_path):
    r = subprocess.run(
        [*NCLB, "run", "limit=16", f"out_dir={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["config"]["model"]["name"] == "tiny"
    assert summary["config"]["task"]["name"] == "chain"
    assert summary["accuracy"] >= 0.8


def test_tiny_model_on_an_untrained_task_is_one_line(tmp_path):
    r = nclb("run", "model=tiny", "task=sudoku", f"out_dir={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "trained on" in lines[0] and "task=sudoku" in lines[0], r.stderr


def test_unknown_command(tmp_path):
    r = nclb("frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command" in r.stderr
