"""The inputs a table was built from, kept beside it so a clone can rebuild it.

Building a table writes <results>/logs/<stem>.json. For a grid of runs: the summary.json of
every run the table read, one per run folder, keyed by the folder's path below the runs' out_dir.
For the tables of other commands (`nclb posterior`, `nclb trace-score`, `nclb lm-eval`, the
cache table): their summaries, and where a table reads per-example records, only the fields it
reads. `nclb table NAME run=false` takes an input from there when its folder holds no usable
one (a fresh clone has no outputs/), so the committed table is rebuilt from the same numbers
without running anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nclb.errors import UserError
from nclb.runs.identity import run_key
from nclb.tables.grid import Grid, with_groups_back

LOGS = "logs"


def shipped_path(results: Path, stem: str) -> Path:
    """Where the inputs behind results/<stem>.* are kept: results/logs/<stem>.json."""
    return results / LOGS / f"{stem}.json"


def read_log(results: Path, stem: str) -> dict[str, Any]:
    """A table's shipped inputs, {"runs": {key: input}, ...} ({} when it has none)."""
    path = shipped_path(results, stem)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as why:
        raise UserError(
            f"{path} is not a shipped-summaries file ({why}); delete it or rebuild"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise UserError(f"{path} is not a shipped-summaries file (no 'runs'); delete it or rebuild")
    return data


def write_log(results: Path, stem: str, data: dict[str, Any]) -> Path:
    """Write a table's inputs ({"runs": {key: input}, ...}) to results/logs/<stem>.json. Each
    input keeps its keys' order (a table's columns can follow it), so callers sort the runs."""
    path = shipped_path(results, stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, ensure_ascii=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_shipped(results: Path, stem: str) -> list[dict[str, Any]]:
    """The shipped inputs of a table, one per run ([] when it has none)."""
    return list(read_log(results, stem).get("runs", {}).values())


def write_shipped(
    results: Path, stem: str, folders: list[Path], summaries: list[dict[str, Any]]
) -> Path:
    """Write the summaries a table was built from (one per run folder) to results/logs/."""
    runs: dict[str, dict[str, Any]] = {}
    for folder, summary in zip(folders, summaries):
        runs.setdefault(run_key(folder), summary)
    return write_log(results, stem, {"runs": dict(sorted(runs.items()))})


def shipped_grid(
    grid: Grid, shipped: list[dict[str, Any]], extra: list[str], required: tuple[str, ...] = ()
) -> Grid:
    """The grid with the optional groups left out for a missing input put back where the
    shipped summaries hold all their runs (run=false on a clone: nothing is run, so the input
    those runs would need is not needed)."""
    from nclb.tables.runs import plan, shipped_summary

    if not shipped:
        return grid
    return with_groups_back(
        grid, lambda rows: all(shipped_summary(p, shipped) for p in plan(rows, extra, required))
    )
