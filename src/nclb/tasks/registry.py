"""Task names to task classes (imported lazily, so optional dependencies load on demand)."""

from __future__ import annotations

import importlib

from nclb.errors import UserError
from nclb.tasks.base import Task

TASKS = {
    "arith": "nclb.tasks.arith:ArithTask",
    "chain": "nclb.tasks.arith:ArithTask",
    "chain_canonical": "nclb.tasks.arith:ArithTask",
    "gsm8k": "nclb.tasks.gsm8k:GSM8kTask",
    "humaneval": "nclb.tasks.humaneval:HumanEvalTask",
    "math": "nclb.tasks.mathtask:MathTask",
    "sudoku": "nclb.tasks.sudoku4:SudokuTask",
    "sudoku9": "nclb.tasks.sudoku9:Sudoku9Task",
    "toy": "nclb.tasks.toy:PalindromeTask",
}


def build_task(cfg: dict) -> Task:
    """The task named by cfg['name'], built from its YAML settings."""
    name = cfg.get("name")
    if name not in TASKS:
        raise UserError(f"task={name!r} is unknown; choose one of {sorted(TASKS)}")
    module, cls = TASKS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls).from_config(cfg)
    except (ValueError, TypeError) as err:  # a task's own check of its values
        raise UserError(f"task={name}: {err}") from None
