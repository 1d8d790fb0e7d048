"""Task names to task classes (imported lazily, so optional dependencies load on demand)."""

from __future__ import annotations

import importlib

from nclb.errors import UserError
from nclb.tasks.base import Task

TASKS = {
    "toy": "nclb.tasks.toy:PalindromeTask",
}


def build_task(cfg: dict) -> Task:
    """The task named by cfg['name'], built from its YAML settings."""
    name = cfg.get("name")
    if name not in TASKS:
        raise UserError(f"task={name!r} is unknown; choose one of {sorted(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls).from_config(cfg)
