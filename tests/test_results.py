"""Runs read back as data: load_runs over a sweep's out_dir, and the sweep's own folder under
out_dir (its summary table and Hydra's multirun.yaml, one folder per sweep)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from nclb.errors import UserError
from nclb.results import load_runs

NCLB = [sys.executable, "-c", "from nclb.cli import main; main()"]


def sweep(out: Path, cwd: Path) -> None:
    """A two-setting `nclb run -m` on the oracle's toy task."""
    args = ["run", "-m", "model=oracle", "task=toy", "decoder=med", "lam=0.1,0.4", "limit=3"]
    done = subprocess.run(
        [*NCLB, *args, f"out_dir={out}"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_sweep_loads_as_one_row_per_setting_and_keeps_its_table(tmp_path):
    out = tmp_path / "runs"
    sweep(out, tmp_path)
    runs = load_runs(out)
    assert len(runs) == 2
    assert sorted(runs["decoder.lam"]) == [0.1, 0.4]
    assert set(runs["model"]) == {"oracle"} and set(runs["task"]) == {"toy"}
    assert set(runs["decoder"]) == {"med"} and set(runs["seed"]) == {0}
    assert set(runs["sampler.cache.mode"]) == {"none"} and not runs["log_trajectory"].any()
    assert (runs["n"] == 3).all() and runs["accuracy"].between(0, 1).all()
    assert (runs["mean_nfe"] > 0).all() and (runs["seconds"] > 0).all()
    assert (runs["examples_per_s"] > 0).all()
    examples = load_runs(out, records=True)
    assert len(examples) == 6 and set(examples["decoder.lam"]) == {0.1, 0.4}
    assert {"id", "correct", "nfe", "run_dir"} <= set(examples.columns)

    [folder] = (out / "sweeps").iterdir()
    assert (folder / "multirun.yaml").is_file()
    rows = list(csv.reader((folder / "summary.csv").open()))
    assert rows[0] == ["model", "task", "label", "n", "accuracy", "NFE"] and len(rows) == 3
    assert (folder / "summary.md").read_text().count("\n") == 4
    assert not (tmp_path / "outputs").exists()  # nothing in the folder the command ran in

    sweep(out, tmp_path)  # the next sweep gets a folder of its own
    assert len(list((out / "sweeps").iterdir())) == 2
    assert len(load_runs(out)) == 2  # the same two run folders, resumed


def test_load_runs_of_a_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        load_runs(tmp_path / "nowhere")
