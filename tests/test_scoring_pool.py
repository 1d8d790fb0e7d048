"""Scoring beside the decode loop: in-order records, no waiting in submit, errors, summaries,
and the strict/lenient accuracy columns of the tables."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nclb.errors import UserError
from nclb.tables.build import build_frame, table_frame
from nclb.tables.grid import Row
from nclb.tables.write import display_frame
from nclb.tasks.humaneval import HumanEvalTask
from nclb.tasks.scoring_pool import ScoringPool, scoring_workers
from nclb.tasks.verdicts import verdict_summary


def test_records_are_written_in_submission_order_and_submit_does_not_wait():
    written: list[int] = []
    gates = [threading.Event() for _ in range(4)]
    pool = ScoringPool(4, lambda record: written.append(record["i"]))

    def make(i: int):
        return lambda: (gates[i].wait(10), {"i": i})[1]

    for i in range(4):
        pool.submit(make(i))  # returns although no record is scored yet
    assert written == [] and pool.in_flight == 4
    gates[2].set()
    gates[1].set()
    assert not threading.Event().wait(0.2) and written == []  # example 0 is not scored yet
    gates[0].set()
    for _ in range(100):
        if written == [0, 1, 2]:
            break
        threading.Event().wait(0.05)
    assert written == [0, 1, 2]
    gates[3].set()
    pool.close()
    assert written == [0, 1, 2, 3] and pool.in_flight == 0


def test_inline_pool_writes_at_once_and_errors_keep_the_other_records():
    written: list[int] = []
    pool = ScoringPool(0, lambda record: written.append(record["i"]))
    pool.submit(lambda: {"i": 7})
    assert written == [7]
    threaded = ScoringPool(2, lambda record: written.append(record["i"]))
    threaded.submit(lambda: {"i": 1})
    threaded.submit(lambda: 1 / 0)
    threaded.submit(lambda: {"i": 2})
    with pytest.raises(ZeroDivisionError):
        threaded.close()
    assert written == [7, 1, 2]


def test_humaneval_scores_beside_the_loop():
    task = HumanEvalTask(workers=2, timeout_s=2.0)
    assert scoring_workers(task) == 2 and scoring_workers(object()) == 0
    ex = task.examples(limit=2)
    records: list[dict] = []
    pool = ScoringPool(task.scoring_workers, records.append)
    for e in ex:
        body = e.meta["canonical_solution"]
        pool.submit(lambda e=e, body=body: {"id": e.id, **task.score(e, body, None).detail})
    pool.submit(lambda: {"id": "loop", **task.score(ex[0], "    while True: pass\n", None).detail})
    pool.close()
    task.close()
    assert [r["id"] for r in records] == [ex[0].id, ex[1].id, "loop"]
    assert [r["status"] for r in records] == ["passed", "passed", "timeout"]
    assert {r["sandbox"] for r in records} == {task.sandbox_mode}


def test_verdict_summary():
    records = [
        {"detail": {"strict_correct": True, "lenient_correct": True, "verdict": "strict"}},
        {"detail": {"strict_correct": False, "lenient_correct": True, "verdict": "strict"}},
    ]
    assert verdict_summary(records) == {
        "accuracy_strict": 0.5,
        "accuracy_lenient": 1.0,
        "verdict": "strict",
    }
    assert verdict_summary([{"detail": {"sandbox": "guards-only"}}]) == {"sandbox": "guards-only"}
    assert verdict_summary([{"correct": True}]) == {}


def summary(accuracy: float, lenient: float | None) -> dict:
    ident = {"model": {"name": "tiny"}, "task": {"name": "gsm8k"}, "sampler": {"block": 8}}
    out = {"identity": ident, "n": 10, "accuracy": accuracy, "mean_nfe": 5.0, "label": "k=1"}
    if lenient is not None:
        out.update(accuracy_strict=accuracy, accuracy_lenient=lenient, verdict="strict")
    return out


def test_tables_show_strict_accuracy_and_lenient_beside_where_they_differ():
    rows = [Row(0, "a", []), Row(0, "b", []), Row(0, "c", [])]
    frame = build_frame(rows, [summary(0.5, 0.8), summary(0.6, 0.6), summary(0.7, None)], None)
    table = table_frame(frame)
    assert table.accuracy.tolist() == [50.0, 60.0, 70.0]
    assert table.lenient_accuracy.iloc[0] == 80.0 and table.lenient_accuracy.iloc[1:].isna().all()
    shown = display_frame(table)
    assert shown["lenient accuracy %"].tolist() == ["80.0", "", ""]
    same = table_frame(build_frame(rows[1:], [summary(0.6, 0.6), summary(0.7, None)], None))
    assert "lenient_accuracy" not in same and "lenient accuracy %" not in display_frame(same)


def test_humaneval_sandbox_settings_are_checked():
    assert HumanEvalTask.from_config({"workers": 1, "sandbox": "guards-only"}).workers == 1
    for bad in ({"workers": 0}, {"sandbox": "none"}):
        with pytest.raises(UserError, match=next(iter(bad))):
            HumanEvalTask.from_config(bad)


def test_nclb_run_scores_humaneval_beside_the_loop_and_logs_the_mode(tmp_path):
    from nclb.config.compose import compose
    from nclb.runs.runlog import read_records
    from nclb.runs.runner import run

    overrides = [
        "model=reference",
        "task=humaneval",
        "decoder=threshold",
        "limit=6",
        "batch_size=3",
        "task.sandbox=guards-only",
        "task.workers=2",
        f"out_dir={tmp_path}",
    ]
    summary = run(compose("config", overrides))
    assert summary["n"] == 6 and summary["accuracy"] == 1.0 and summary["sandbox"] == "guards-only"
    records = read_records(Path(summary["run_dir"]) / "records.jsonl")
    assert [r["id"] for r in records] == [f"HumanEval/{i}" for i in range(6)]
    assert all(r["detail"]["sandbox"] == "guards-only" for r in records)


def test_nclb_run_summary_has_both_verdicts(tmp_path):
    from nclb.config.compose import compose
    from nclb.runs.runner import run

    summary = run(compose("config", ["model=tiny", "task=arith", "limit=3", f"out_dir={tmp_path}"]))
    assert summary["verdict"] == "strict" and summary["accuracy"] == summary["accuracy_strict"]
    assert summary["accuracy_lenient"] >= summary["accuracy_strict"]


def test_guards_only_run_warns_once_naming_the_gaps(capsys):
    task = HumanEvalTask(sandbox="guards-only", workers=1)
    ex = task.examples(limit=1)[0]
    task.score(ex, ex.meta["canonical_solution"], None)
    task.score(ex, ex.meta["canonical_solution"], None)
    task.close()
    err = capsys.readouterr().err
    assert err.count("guards-only mode") == 1 and "FileIO" in err
