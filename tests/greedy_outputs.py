"""Greedy outputs of every decoder on the tiny model, as `nclb run` decodes them (a shared helper
of the cache tests; `python tests/greedy_outputs.py` rewrites tests/golden/greedy_outputs.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "greedy_outputs.json"

# (task, limit, overrides): every decoder, early exit, and an any-order task.
SETTINGS = [
    ("chain", 12, ["decoder=ktoken", "k=1"]),
    ("chain", 12, ["decoder=ktoken", "k=2"]),
    ("chain", 12, ["decoder=ktoken", "k=1", "gamma=0.1"]),
    ("chain", 12, ["decoder=med", "lam=0.2"]),
    ("chain", 12, ["decoder=med", "lam=0.2", "gamma=0.1"]),
    ("chain", 12, ["decoder=ar_med", "lam=0.2", "gamma=0.1"]),
    ("chain", 12, ["decoder=threshold"]),
    ("chain", 12, ["decoder=llada"]),
    ("chain", 12, ["decoder=eb"]),
    ("chain", 12, ["decoder=klass"]),
    ("chain", 12, ["decoder=verify"]),
    ("sudoku9", 3, ["decoder=med", "lam=0.2"]),
]


def workload(task_name: str, limit: int, overrides: list[str]) -> tuple:
    """(run settings, model, canvases) of the first `limit` examples, as `nclb run` builds them."""
    from nclb.config.compose import compose
    from nclb.config.settings import resolve
    from nclb.models.build import build_model
    from nclb.tasks.build import build_task, model_context

    cfg = compose("config", [f"task={task_name}", f"limit={limit}", "device=cpu", *overrides])
    s = resolve(cfg)
    task = build_task(s.task)
    examples = task.examples(s.limit)
    model = build_model(s.model, model_context(task, examples, s.gen_length))
    return s, model, [task.canvas(ex, model, s.gen_length) for ex in examples]


def outputs(task_name: str, limit: int, overrides: list[str], batch_size: int = 8) -> list:
    """The generated regions of the first `limit` examples (token ids), batch `batch_size`."""
    from nclb.runs.runner import decode

    s, model, canvases = workload(task_name, limit, overrides)
    gens = decode(model, canvases, s.decoder, s.sampler, batch_size)
    return [g.region for g in gens]


def as_text(region: list[int]) -> str:
    """One region as the golden file writes it (ids separated by spaces)."""
    return " ".join(map(str, region))


def key(task_name: str, overrides: list[str]) -> str:
    """The golden file's name for one setting."""
    return " ".join([f"task={task_name}", *overrides])


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    golden = {key(t, o): [as_text(r) for r in outputs(t, n, o)] for t, n, o in SETTINGS}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({len(golden)} settings)", file=sys.stderr)
