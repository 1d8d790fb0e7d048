"""`nclb table`: grids, Wilson intervals, the table built from synthetic logs (golden CSV),
a 2-threshold multirun on the oracle built into a 2-row table, and skipping logged runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nclb.errors import UserError
from nclb.tables.build import build_frame, table_frame, wilson_interval
from nclb.tables.grid import load_grid
from nclb.tables.make import make_table, make_targets
from nclb.tables.write import write_table

GOLDEN = Path(__file__).parent / "golden" / "tables_synthetic.csv"

SYNTHETIC_GRID = """
name: synthetic
title: Synthetic table
paper: table2
models:
  tiny:
    - overrides: [model=tiny, task=arith, limit=200]
      paper_ref: {model: llada, task: gsm8k}
      baseline: k=1
      rows:
        - {label: k=1, set: [decoder=ktoken, k=1], paper: true}
        - {label: k=1, set: [decoder=ktoken, k=1], sweep: {gamma: [0.1]}, paper: true}
        - {label: MED, set: [decoder=med], sweep: {lam: [0.2]}, paper: true}
        - {series: MED, label: MED, set: [decoder=med], sweep: {lam: [0.4]}, table: false}
    - overrides: [model=tiny, task=sudoku9, limit=50]
      baseline: k=1
      rows:
        - {label: k=1, set: [decoder=ktoken, k=1]}
        - {label: k=2, set: [decoder=ktoken, k=2], paper: true}
"""


def summary(task, n, correct, nfe, label, block, gamma=None, exit_rate=0.0):
    """A summary.json as nclb.runs.runner writes it (the fields the tables read)."""
    return {
        "n": n,
        "accuracy": correct / n,
        "mean_nfe": nfe,
        "exit_rate": exit_rate,
        "label": label,
        "git": "abc123",
        "config": {"limit": n},
        "identity": {
            "model": {"name": "tiny", "path": None},
            "task": {"name": task, "n_test": 500, "seed": 1234},
            "decoder": {"name": label.split()[0]},
            "sampler": {"block": block, "gamma": gamma},
            "seed": 0,
        },
    }


SUMMARIES = [
    summary("arith", 200, 196, 33.0, "ktoken k=1 order=entropy block=8", 8),
    summary("arith", 200, 190, 11.0, "ktoken k=1 order=entropy block=8 gamma=0.1", 8, 0.1, 0.9),
    summary("arith", 200, 194, 5.5, "med lam=0.2 rule=per_position block=8", 8),
    summary("arith", 200, 150, 4.0, "med lam=0.4 rule=per_position block=8", 8),
    summary("sudoku9", 50, 45, 40.0, "ktoken k=1 order=entropy block=81", 81),
    summary("sudoku9", 50, 20, 20.0, "ktoken k=2 order=entropy block=81", 81),
]


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(0, 10)
    assert low == 0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == pytest.approx(1.0)


def test_grid_expansion_and_bad_baseline(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text(SYNTHETIC_GRID)
    grid = load_grid(str(path), "tiny")
    labels = [r.label for r in grid.rows]
    assert labels == ["k=1", "k=1 gamma=0.1", "MED lam=0.2", "MED lam=0.4", "k=1", "k=2"]
    assert grid.rows[1].overrides[-1] == "gamma=0.1" and grid.rows[3].in_table is False
    assert grid.rows[0].paper_ref == ("llada", "gsm8k") and grid.rows[4].paper_ref is None
    path.write_text(SYNTHETIC_GRID.replace("baseline: k=1", "baseline: k=9", 1))
    with pytest.raises(UserError, match="baseline 'k=9'"):
        load_grid(str(path), "tiny")
    with pytest.raises(UserError, match="no grid for model=llada"):
        load_grid(str(path), "llada")


def test_table_from_synthetic_logs_matches_golden_csv(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text(SYNTHETIC_GRID)
    grid = load_grid(str(path), "tiny")
    frame = build_frame(grid.rows, SUMMARIES, grid.paper)
    table = table_frame(frame)
    # Independent checks of a few cells before the golden comparison.
    assert list(table.setting) == ["k=1", "k=1 gamma=0.1", "MED lam=0.2", "k=1", "k=2"]
    assert table.speedup.tolist() == [1.0, 3.0, 6.0, 1.0, 2.0]
    assert table.paper_accuracy.iloc[1] == 78.6 and table.paper_nfe.iloc[2] == 94
    assert pd.isna(table.paper_accuracy.iloc[4])  # sudoku9 has no paper_ref: nothing beside it
    paths = write_table(
        table, tmp_path, "synthetic", "Synthetic", "make synthetic", SUMMARIES, "table2"
    )
    got = pd.read_csv(paths[1])
    pd.testing.assert_frame_equal(got, pd.read_csv(GOLDEN))
    md = paths[0].read_text()
    assert "REPORTED BY THE PAPER" in md and "model=tiny (checkpoints/tiny-arith)" in md
    assert (
        "| tiny | arith | 200 | k=1 | ktoken k=1 order=entropy block=8 | 98.0 [95.0, 99.2] |" in md
    )
    assert "\\begin{tabular}" in paths[2].read_text()


def nclb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The nclb command in a subprocess."""
    code = "from nclb.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


THRESHOLD_GRID = """
name: thresholds
title: Two thresholds
models:
  tiny:
    - overrides: [model=oracle, task=toy, decoder=threshold, limit=6, batch_size=6]
      rows:
        - {series: threshold, sweep: {decoder.tau: [0.5, 0.9]}}
"""


def test_two_threshold_multirun_builds_two_row_table(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    r = nclb(
        "run",
        "-m",
        "model=oracle",
        "task=toy",
        "decoder=threshold",
        "decoder.tau=0.5,0.9",
        "limit=6",
        f"out_dir={runs}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    grid = tmp_path / "thresholds.yaml"
    grid.write_text(THRESHOLD_GRID)
    # run=false: built from the multirun's logs only (a missing run would be an error).
    make_table(
        [str(grid), "run=false", f"out_dir={runs}", f"results={results}"], log=lambda _: None
    )
    table = pd.read_csv(results / "thresholds.csv")
    assert len(table) == 2 and list(table.setting) == ["decoder.tau=0.5", "decoder.tau=0.9"]
    assert set(table.model) == {"oracle"} and set(table.n) == {6}
    assert table.mean_nfe.iloc[0] <= table.mean_nfe.iloc[1]  # a lower threshold commits more


OPTIONAL_GROUP = """
    - label: needs a model another command makes
      optional: {optional}
      requires:
        - {{path: {path}, missing: "make it with nclb train"}}
      overrides: [model=oracle, task=toy, decoder=threshold, limit=6, batch_size=6]
      rows:
        - {{series: threshold, sweep: {{decoder.tau: [0.7]}}}}
"""


def test_an_optional_group_with_a_missing_input_is_left_out_and_noted(tmp_path):
    results, missing = tmp_path / "results", tmp_path / "no-such-model"
    grid = tmp_path / "thresholds.yaml"
    grid.write_text(THRESHOLD_GRID + OPTIONAL_GROUP.format(optional="true", path=missing))
    loaded = load_grid(str(grid), "tiny")
    assert [r.label for r in loaded.rows] == ["decoder.tau=0.5", "decoder.tau=0.9"]
    assert loaded.skipped == [
        f"needs a model another command makes: {missing} does not exist; make it with nclb train"
    ]
    make_table(
        [str(grid), f"out_dir={tmp_path / 'runs'}", f"results={results}"], log=lambda _: None
    )
    assert len(pd.read_csv(results / "thresholds.csv")) == 2
    assert (
        "Left out (optional, input missing): needs a model"
        in (results / "thresholds.md").read_text()
    )
    missing.mkdir()  # present: the group's row is in the grid
    assert len(load_grid(str(grid), "tiny").rows) == 3
    grid.write_text(THRESHOLD_GRID + OPTIONAL_GROUP.format(optional="false", path=tmp_path / "x"))
    with pytest.raises(UserError, match="x does not exist; make it with nclb train"):
        make_table([str(grid), f"results={results}"], log=lambda _: None)


def test_logged_runs_are_skipped(tmp_path, monkeypatch):
    import nclb.runs.runner

    calls = []
    real_run = nclb.runs.runner.run

    def counting_run(cfg):
        calls.append(cfg["decoder"].get("tau"))
        return real_run(cfg)

    monkeypatch.setattr(nclb.runs.runner, "run", counting_run)
    runs, results = tmp_path / "runs", tmp_path / "results"
    grid = tmp_path / "thresholds.yaml"
    grid.write_text(THRESHOLD_GRID.replace("limit=6", "limit=3"))
    args = [str(grid), f"out_dir={runs}", f"results={results}"]
    make_table(args, log=lambda _: None)
    assert sorted(calls) == [0.5, 0.9]
    records = sorted(runs.rglob("records.jsonl"))
    stamps = [p.stat().st_mtime_ns for p in records]
    make_table(args, log=lambda _: None)
    assert sorted(calls) == [0.5, 0.9]  # second invocation: nothing run again
    assert [p.stat().st_mtime_ns for p in records] == stamps
    # A different n is not the same logged run: it is extended (resumed), not skipped.
    make_table([*args, "limit=4"], log=lambda _: None)
    assert len(calls) == 4
    assert json.loads(next(runs.rglob("summary.json")).read_text())["n"] == 4
    # Fewer examples than logged: cut from the records, nothing run or rewritten.
    make_table([*args, "limit=2"], log=lambda _: None)
    assert len(calls) == 4
    assert json.loads(next(runs.rglob("summary.json")).read_text())["n"] == 4
    assert set(pd.read_csv(results / "thresholds.csv").n) == {2}
    # Another invocation rewrote the summaries with a smaller n: the records still hold 4.
    for path in runs.rglob("summary.json"):
        summary = json.loads(path.read_text())
        summary["n"], summary["config"]["limit"] = 2, 2
        path.write_text(json.dumps(summary))
    make_table([*args, "limit=4", "run=false"], log=lambda _: None)
    assert len(calls) == 4
    assert set(pd.read_csv(results / "thresholds.csv").n) == {4}


def test_missing_runs_with_run_false_and_unknown_table(tmp_path):
    grid = tmp_path / "thresholds.yaml"
    grid.write_text(THRESHOLD_GRID)
    with pytest.raises(UserError, match="2 runs are not logged yet"):
        make_table(
            [str(grid), "run=false", f"out_dir={tmp_path / 'runs'}", f"results={tmp_path}"],
            log=lambda _: None,
        )
    with pytest.raises(UserError, match="unknown table 'table9'"):
        make_table(["table9"], log=lambda _: None)


def test_replaced_checkpoint_or_missing_metric_makes_a_logged_run_stale(tmp_path):
    import os

    from nclb.tables.grid import Row
    from nclb.tables.runs import PlannedRun, logged_summary, stale_records

    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    identity = {"model": {"name": "tiny", "path": str(weights.parent)}, "task": {"name": "arith"}}
    folder = tmp_path / "run"
    folder.mkdir()
    data = {"n": 5, "config": {"limit": 5}, "identity": identity, "kl": {"estimate": 0.1}}
    (folder / "summary.json").write_text(json.dumps(data))
    os.utime(weights, (1, 1))  # older than the summary
    run = PlannedRun(Row(0, "k=1", []), {}, folder, identity, 5)
    assert logged_summary(run) is not None and not stale_records(run)
    assert logged_summary(PlannedRun(Row(0, "k=1", []), {}, folder, identity, 6)) is None
    needs_pair = PlannedRun(Row(0, "k=1", []), {}, folder, identity, 5, ("kl.pair",))
    assert logged_summary(needs_pair) is None and stale_records(needs_pair)
    later = (folder / "summary.json").stat().st_mtime + 10
    os.utime(weights, (later, later))  # the checkpoint was replaced after the run
    assert logged_summary(run) is None and stale_records(run)


TABLE3_GRID = """
name: t3
kind: posterior
title: Posterior traces
paper: table3
models:
  tiny:
    - overrides: [model=tiny, task=arith, n=10, out_dir=OUT]
      paper_ref: {model: llada, task: gsm8k}
"""


def test_table3_from_a_logged_posterior_summary(tmp_path):
    from nclb.config.compose import compose

    out = tmp_path / "posterior"
    out.mkdir()
    grid = tmp_path / "t3.yaml"
    grid.write_text(TABLE3_GRID.replace("OUT", str(out)))
    cfg = compose("posterior", ["model=tiny", "task=arith", "n=10", f"out_dir={out}"])
    part = {"n": 10, "accuracy": 1.0, "mean_answer_logprob": -0.25}
    summary = {
        "problems": 10,
        "posterior": {**part, "trace_ok": 0.8},
        "prior": {**part, "trace_ok": 0.5, "accuracy": 0.6},
        "posterior_where_prior_wrong": {"n": 4, "trace_ok": 0.75},
        "config": cfg,
        "traces": str(out / "traces.jsonl"),
        "git": "abc",
    }
    (out / "summary.json").write_text(json.dumps(summary))
    results = tmp_path / "results"
    make_table([str(grid), "run=false", f"results={results}"], log=lambda _: None)
    table = pd.read_csv(results / "t3.csv")
    assert table.trace_correct.tolist() == [50.0, 80.0, 75.0]
    assert table.answer_accuracy.iloc[0] == 60.0 and pd.isna(table.answer_accuracy.iloc[1])
    assert pd.isna(table.paper_prm.iloc[1]) and table.paper_prm.iloc[2] == 38.0
    assert table.paper_gpt4o.iloc[2] == 43.0
    # Another setting (n=20) is not covered by the logged summary.
    with pytest.raises(UserError, match="no `nclb posterior` output"):
        make_table([str(grid), "run=false", "n=20", f"results={results}"], log=lambda _: None)


def test_figure4_from_a_logged_trace_score_summary(tmp_path):
    from nclb.config.compose import compose

    out = tmp_path / "scores"
    out.mkdir()
    grid = tmp_path / "f4.yaml"
    grid.write_text(
        TABLE3_GRID.replace("kind: posterior", "kind: correlation").replace("OUT", str(out))
    )
    cfg = compose("trace_score", ["model=tiny", "task=arith", "n=10", f"out_dir={out}"])
    rows = [
        {
            "fraction": f,
            "n": 10,
            "pearson_reward": 0.1 + f / 2,
            "spearman_reward": 0.1 + f / 3,
            "pearson_confidence": 0.05,
            "spearman_confidence": 0.04,
            "mean_reward_correct": -0.1,
            "mean_reward_wrong": -1 - 4 * f,
        }
        for f in (0.0, 0.5, 1.0)
    ]
    summary = {"n": 10, "accuracy": 0.6, "correlations": rows, "config": cfg, "git": "abc"}
    (out / "summary.json").write_text(json.dumps(summary))
    results = tmp_path / "results"
    make_table([str(grid), "run=false", f"results={results}"], log=lambda _: None)
    table = pd.read_csv(results / "t3.csv")
    assert table.fraction.tolist() == [0.0, 0.5, 1.0]
    assert table.pearson_reward.tolist() == [0.1, 0.35, 0.6] and set(table.accuracy) == {60.0}
    assert (results / "t3.png").stat().st_size > 0 and (results / "t3.svg").is_file()


def test_metrics_from_takes_another_grids_columns(tmp_path):
    borrowed = tmp_path / "borrowed.yaml"
    borrowed.write_text(
        "name: borrowed\nmetrics_from: table6\n"
        "models: {tiny: [{overrides: [model=tiny], rows: [{label: k=1, set: [k=1]}]}]}\n"
    )
    assert load_grid(str(borrowed), "tiny").metrics == load_grid("table6", "tiny").metrics
    assert load_grid("table6", "tiny").metrics
    path = tmp_path / "both.yaml"
    path.write_text(
        "name: both\nmetrics_from: table6\nmetrics: [{column: x, source: y}]\n"
        "models: {tiny: [{overrides: [model=tiny], rows: [{label: k=1, set: [k=1]}]}]}\n"
    )
    with pytest.raises(UserError, match="metrics or metrics_from"):
        load_grid(str(path), "tiny")


def test_provenance_lists_each_task_seed_once():
    from nclb.tables.write import provenance

    test = summary("chain", 500, 480, 18.5, "med lam=0.2 rule=per_position block=8", 8)
    again = summary("chain", 500, 470, 56.0, "ktoken k=1 order=entropy block=8", 8)
    validation = json.loads(json.dumps(test))
    validation["identity"]["task"]["seed"] = 4321
    lines = provenance([test, again, validation])
    assert len(lines) == 2
    assert "seed=1234" in lines[0] and "seed=4321" in lines[1]


def test_the_make_targets_are_read_from_the_makefile_and_are_grids(tmp_path):
    from nclb.config import config_dir

    targets = make_targets()
    assert {"table1", "table2", "decoder_front"} <= set(targets)
    assert all((config_dir() / "grids" / f"{name}.yaml").is_file() for name in targets)
    assert make_targets(tmp_path) == []  # outside a checkout: no Makefile, no targets
