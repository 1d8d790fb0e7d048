"""scripts/table4.py names the arith task in every command it runs (the tiny arith model's
Table 4), whatever task `nclb posterior` and `nclb trace-score` default to."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from script_module import script


class Stop(Exception):
    pass


def task_of(args: tuple[str, ...]) -> str | None:
    named = [a.split("=", 1)[1] for a in args if a.startswith("task=")]
    return named[-1] if named else None


def test_posterior_and_finetune_commands_name_the_arith_task(tmp_path, monkeypatch) -> None:
    table4 = script("table4")
    calls: list[tuple[str, ...]] = []

    def record(*args: str) -> None:
        calls.append(args)
        if args[0] == "finetune":
            raise Stop

    monkeypatch.setattr(table4, "nclb", record)
    monkeypatch.setattr(sys, "argv", ["table4.py", "--out", str(tmp_path)])
    with pytest.raises(Stop):
        table4.main()
    assert [c[0] for c in calls] == ["posterior", "posterior", "finetune"]
    assert all(task_of(c) == "arith" for c in calls), calls


def test_trace_score_commands_name_the_arith_task(tmp_path, monkeypatch) -> None:
    table4 = script("table4")
    calls: list[tuple[str, ...]] = []

    def record(*args: str) -> None:
        calls.append(args)
        out = Path(next(a.split("=", 1)[1] for a in args if a.startswith("out_dir=")))
        out.mkdir(parents=True)
        (out / "summary.json").write_text(json.dumps({"accuracy": 0.5, "n": 2}))

    monkeypatch.setattr(table4, "nclb", record)
    args = Namespace(out=str(tmp_path), eval_n=2)
    scores = table4.trace_scores("ft", "base", [], args)
    assert len(scores) == 2 and [c[0] for c in calls] == ["trace-score", "trace-score"]
    assert all(task_of(c) == "arith" for c in calls), calls
