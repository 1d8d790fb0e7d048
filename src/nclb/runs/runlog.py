"""Run-folder files: records (one JSON object a line) read and appended as examples finish, and
summaries written atomically."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"
SUMMARY = "summary.json"


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
    return records


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


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temp file beside `path`, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
