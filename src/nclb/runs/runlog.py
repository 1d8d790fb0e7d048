"""Run folders: per-example records appended as they finish, summaries written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nclb.config.paths import REPO_ROOT, tiny_checkpoint
from nclb.config.settings import RunSettings

try:
    import fcntl
except ImportError:  # Windows: no run-folder locking
    fcntl = None

RECORDS = "records.jsonl"
SUMMARY = "summary.json"
LOCK = ".lock"
# Model and task keys that do not change what a run computes (where the same data is read from).
MODEL_NOT_IDENTITY = ("device",)
TASK_NOT_IDENTITY = ("data_dir",)
# What a run's or a table's outputs depend on: changes here make a revision "-dirty".
CODE_PATHS = ("src", "configs", "scripts", "pyproject.toml")
# Run folders this process holds a RunLock on -> whether resuming them was announced.
HELD: dict[Path, bool] = {}


def run_identity(
    model: dict[str, Any],
    task: dict[str, Any],
    decoder: dict[str, Any],
    sampler: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The resolved settings that determine a run's outputs (limit, batch size, device, the
    data folder and output paths are left out, so a run can be extended or resumed under other
    values)."""
    model = {k: v for k, v in model.items() if k not in MODEL_NOT_IDENTITY}
    task = {k: v for k, v in task.items() if k not in TASK_NOT_IDENTITY}
    return {"model": model, "task": task, "decoder": decoder, "sampler": sampler, "seed": seed}


def run_dir(out_dir: Path, identity: dict[str, Any]) -> Path:
    """<out_dir>/<model>/<task>/<decoder>-<hash of the identity>: one folder per distinct run."""
    blob = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    names = identity["model"]["name"], identity["task"]["name"], identity["decoder"]["name"]
    return out_dir / names[0] / names[1] / f"{names[2]}-{digest}"


def run_folder(s: RunSettings) -> Path:
    """The run folder of resolved settings (as `nclb run` names it)."""
    return run_dir(
        s.out_dir, run_identity(s.model, s.task, s.decoder_cfg, s.sampler.identity(), s.seed)
    )


def parse_record(line: bytes, key: str | None) -> dict[str, Any] | None:
    """The record on one line, or None when the line is not a complete JSON object (torn by a
    kill: no newline; garbled) or lacks the `key` field."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or (
        key is not None and not isinstance(record.get(key), str | int)
    ):
        return None
    return record


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON objects of a .jsonl file, read only: a line still being written (no
    newline yet) or garbled is skipped, never cut or moved ([] when there is no file)."""
    if not path.is_file():
        return []
    with path.open("rb") as f:
        return [record for line in f if (record := parse_record(line, None)) is not None]


def set_aside_path(path: Path) -> Path:
    """The side file for lines taken out of `path`: <stem>.set-aside-<UTC time><suffix>."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return path.with_name(f"{path.stem}.set-aside-{stamp}{path.suffix}")


def append_lines(path: Path, lines: list[bytes]) -> None:
    """Append `lines` (each ending in a newline) to `path` and fsync it."""
    with path.open("ab") as f:
        f.writelines(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        f.flush()
        os.fsync(f.fileno())


def replace_lines(path: Path, lines: list[bytes]) -> None:
    """Rewrite `path` with `lines` through a temp file renamed over it (never half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_records(path: Path, key: str | None = "id") -> list[dict[str, Any]]:
    """The records of a JSONL file, one per `key` value (key=None: every line).

    Nothing valid is ever dropped: lines that are not a complete record (torn by a kill,
    garbled) and later lines repeating a key are moved to a side file
    <stem>.set-aside-<UTC time>.jsonl beside it, the file is rewritten atomically with every
    valid record, and one warning line says how many records were kept. Call it while holding
    the folder's RunLock when another process may be appending.
    """
    if not path.exists():
        return []
    records, kept, bad, repeated, seen = [], [], [], [], set()
    with path.open("rb") as f:
        for line in f:
            record = parse_record(line, key)
            if record is None:
                bad.append(line)
            elif key is not None and record[key] in seen:
                repeated.append(line)
            else:
                records.append(record)
                kept.append(line)
                if key is not None:
                    seen.add(record[key])
    if bad or repeated:
        side = set_aside_path(path)
        append_lines(side, bad + repeated)
        replace_lines(path, kept)
        parts = [f"{len(bad)} unreadable line(s) (torn by a kill or garbled)"] if bad else []
        parts += [f"{len(repeated)} record(s) repeating an {key}"] if repeated else []
        print(
            f"warning: {path}: moved {' and '.join(parts)} to {side.name}; "
            f"kept {len(records)} records",
            file=sys.stderr,
        )
    announce_resume(path, len(records))
    return records


def announce_resume(path: Path, count: int) -> None:
    """Say once, when this process reads the records of a run folder it holds the RunLock of
    (the runner resuming it), how many logged examples are kept."""
    folder = path.parent.resolve()
    if path.name == RECORDS and count and HELD.get(folder) is False:
        HELD[folder] = True
        print(
            f"resuming {count} logged examples in {path.parent} (not redone; resume=false "
            "starts over)",
            file=sys.stderr,
        )


class RecordWriter:
    """Appends one JSON line per example and flushes it to disk at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append and fsync one record."""
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        """Close the file."""
        self.file.close()


class RunLock:
    """An exclusive lock on a run folder, taken before its records are read and released once
    its summary is written, so two processes never append to the same records file at once.

    Two jobs of a sweep that differ only in settings outside the run identity (limit,
    batch_size, device) share a folder: the second waits here, then resumes from the first's
    records. POSIX record locks (fcntl.lockf) also work on NFS; a lock still held by a process
    that dies is released by the operating system.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder.resolve()
        self.file = (folder / LOCK).open("a")
        if fcntl is not None:
            try:
                fcntl.lockf(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                print(f"waiting for another process that is running {folder}", file=sys.stderr)
                fcntl.lockf(self.file, fcntl.LOCK_EX)
        HELD[self.folder] = False

    def release(self) -> None:
        """Release the lock (closing the file releases it too)."""
        file = getattr(self, "file", None)
        if file is not None and not file.closed:
            file.close()
            HELD.pop(self.folder, None)

    def __del__(self) -> None:
        self.release()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temp file beside `path`, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def uncommitted_code(root: Path = REPO_ROOT) -> list[str] | None:
    """The files under CODE_PATHS with uncommitted changes (untracked ones included, ignored ones
    not); None outside a git checkout. Other files (results/, README.md) do not count: they
    do not change what a run or a table computes."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line[3:] for line in out.splitlines() if line.strip()]


def git_revision() -> str:
    """The repo's commit, with '-dirty' when the code (CODE_PATHS) has uncommitted changes;
    'unknown' outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if uncommitted_code() else "")


def weights_file(identity: dict[str, Any]) -> Path | None:
    """The local weights file of the run's model, if it has one (tiny: checkpoints/tiny-<task>
    unless model.path; a folder given as model.path for the others; hub ids: None)."""
    model = identity["model"]
    path = model.get("path")
    if not path and model.get("name") == "tiny":
        path = tiny_checkpoint(identity["task"]["name"])
    if not path or not Path(path).is_dir():
        return None
    files = sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin"))
    return files[0] if files else None


def set_aside_stale_records(folder: Path, identity: dict[str, Any]) -> Path | None:
    """Rename the folder's records.jsonl to records.stale-<UTC time>.jsonl when the model's local
    weights file is newer than it (a checkpoint replaced in place: the identity holds the model
    config, not the weights), so that a resumed run does not mix two models' outputs. Returns
    the new name, or None when nothing was set aside."""
    records, weights = folder / RECORDS, weights_file(identity)
    if weights is None or not records.is_file():
        return None
    if weights.stat().st_mtime <= records.stat().st_mtime:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"records.stale-{stamp}.jsonl"
    records.rename(target)
    return target
