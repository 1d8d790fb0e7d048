"""The summaries a table was built from, kept beside it so a clone can rebuild it.

Building a table writes <results>/logs/<stem>.json: the summary.json of every run the table
read, one per run folder, keyed by the folder's path below the runs' out_dir. `nclb table NAME
run=false` takes a run from there when its folder holds no usable summary (a fresh clone has
no outputs/), so the committed table is rebuilt from the same numbers without running anything.
Only summaries are kept (no per-example records): a few kB a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nclb.errors import UserError

LOGS = "logs"


def shipped_path(results: Path, stem: str) -> Path:
    """Where the summaries behind results/<stem>.* are kept: results/logs/<stem>.json."""
    return results / LOGS / f"{stem}.json"


def read_shipped(results: Path, stem: str) -> list[dict[str, Any]]:
    """The shipped summaries of a table ([] when it has none)."""
    path = shipped_path(results, stem)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as why:
        raise UserError(
            f"{path} is not a shipped-summaries file ({why}); delete it or rebuild"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise UserError(f"{path} is not a shipped-summaries file (no 'runs'); delete it or rebuild")
    return list(data["runs"].values())


def write_shipped(
    results: Path, stem: str, folders: list[Path], summaries: list[dict[str, Any]]
) -> Path:
    """Write the summaries a table was built from (one per run folder) to results/logs/."""
    runs: dict[str, dict[str, Any]] = {}
    for folder, summary in zip(folders, summaries):
        runs.setdefault(run_key(folder), summary)
    path = shipped_path(results, stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"runs": dict(sorted(runs.items()))}, indent=1, sort_keys=True, default=str)
    path.write_text(text + "\n")
    return path


def run_key(folder: Path) -> str:
    """A run folder named the same on every machine: <model>/<task>/<decoder>-<hash>."""
    return "/".join(Path(folder).parts[-3:])
