"""Where evaluation data comes from: a local data dir first, then the HF hub, else a clear error.

Resolution order for a file `rel` (e.g. "gsm8k/test.jsonl"):
1. the task's `data_dir` config value (the YAML default reads NCLB_DATA_DIR);
2. when that is null: $NCLB_DATA_DIR, then `../shared/data` next to the repo root, where it exists;
3. the Hugging Face hub through `datasets`, when the task names a hub copy and the hub is reachable;
4. otherwise `DataError`, whose one-line message says what to set.
An explicit `data_dir` that lacks the file is an error (no silent fall-back to the hub).
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nclb.errors import UserError
from nclb.locations import REPO_ROOT

ENV_VAR = "NCLB_DATA_DIR"
HUB_HOST = ("huggingface.co", 443)


class DataError(UserError):
    """Evaluation data could not be found; the message says what to set (a ValueError)."""


@dataclass(frozen=True)
class HubSource:
    """A hub copy of a file: `datasets.load_dataset(path, name, split=split)`."""

    path: str
    split: str
    name: str | None = None


def repo_root() -> Path:
    """The repository root (nclb.locations.REPO_ROOT; a function so tests can move it)."""
    return REPO_ROOT


def default_data_dir() -> Path | None:
    """$NCLB_DATA_DIR, else ../shared/data beside the repo root, if it exists."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    shared = repo_root().parent / "shared" / "data"
    return shared if shared.is_dir() else None


def hub_online(timeout: float = 1.5) -> bool:
    """False when HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set or the hub is unreachable (fast)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of a .jsonl or .csv file, `where` naming the file and line; a
    DataError naming them for a line that is not a JSON object."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return [(f"{path} line {reader.line_num}", row) for row in reader]
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{where} is not valid JSON ({err.msg}); fix or remove that line"
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{where} is not a JSON object; fix or remove that line")
            rows.append((where, row))
    return rows


def checked_rows(
    rows: list[tuple[str, dict[str, Any]]], source: str, fields: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The rows of `source` (a file, or the hub copy) when there is at least one and each has
    every one of `fields`; a DataError naming the file and line otherwise."""
    if not rows:
        raise DataError(f"{source} has no rows; point task.data_dir=... at a complete copy")
    for where, row in rows:
        missing = [name for name in fields if name not in row]
        if missing:
            raise DataError(
                f"{where} has no {missing[0]!r} field (each row needs {', '.join(fields)}); "
                "fix that line or point task.data_dir=... at another copy"
            )
    return [row for _, row in rows]


def load_rows(
    rel: str,
    data_dir: str | Path | None,
    hub: HubSource | None = None,
    fields: tuple[str, ...] = (),
) -> list[dict]:
    """Rows of data file `rel`, resolved as described in the module docstring; a DataError
    when it has no rows or a row lacks one of `fields`."""
    if data_dir not in (None, ""):
        path = Path(data_dir).expanduser() / rel
        if not path.is_file():
            raise DataError(
                f"{path} not found; point task.data_dir=... (or {ENV_VAR}) at a folder with {rel}"
            )
        return checked_rows(read_rows(path), str(path), fields)
    base = default_data_dir()
    if base is not None and (base / rel).is_file():
        return checked_rows(read_rows(base / rel), str(base / rel), fields)
    if hub is not None and hub_online():
        import datasets

        source = f"the hub's {hub.path} {hub.split} split"
        found = datasets.load_dataset(hub.path, hub.name, split=hub.split)
        rows = [(f"{source} row {i}", dict(row)) for i, row in enumerate(found, start=1)]
        return checked_rows(rows, source, fields)
    looked = f" (looked in {base})" if base is not None else ""
    raise DataError(
        f"no local copy of {rel}{looked} and the HF hub is not reachable; "
        f"set {ENV_VAR}=/path/to/data or data_dir=/path/to/data"
    )
