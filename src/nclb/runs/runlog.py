"""Run-folder files: records (one JSON object a line) read and appended as examples finish, and
summaries written atomically."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class ListOf:
    """A JSON list whose every item has one of `types`."""

    types: tuple[Any, ...]


@dataclass(frozen=True)
class Schema:
    """The fields of a JSON object, each with the types its value may have: Python types (None
    for null; int and float are told from bool), a nested Schema (an object of that shape) or
    ListOf. Fields it does not name are allowed."""

    required: dict[str, tuple[Any, ...]]
    optional: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def problem(self, record: dict[str, Any], where: str = "") -> str | None:
        """Why `record` does not have this shape (its first missing field or value of the wrong
        type, named with `where` before it), or None when it does."""
        missing = [repr(where + name) for name in self.required if name not in record]
        if missing:
            return f"missing field(s) {', '.join(missing[:3])}{', ...' if missing[3:] else ''}"
        for name, types in (*self.required.items(), *self.optional.items()):
            if name in record:
                problem = value_problem(record[name], types, where + name)
                if problem is not None:
                    return problem
        return None


JSON_NAMES = {
    bool: "true/false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def type_name(value: Any) -> str:
    """How the type of a JSON value reads in a message ("a string", "null", ...)."""
    return JSON_NAMES.get(type(value), type(value).__name__)


def kind_name(kind: Any) -> str:
    """How an entry of a Schema field's types reads in a message."""
    if isinstance(kind, Schema):
        return "an object"
    if isinstance(kind, ListOf):
        return "a list"
    return JSON_NAMES[type(None) if kind is None else kind]


def has_type(value: Any, kind: Any) -> bool:
    """Whether `value` is of `kind`, a Python type or None (a bool is no int or float)."""
    if kind is None:
        return value is None
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind)


def value_problem(value: Any, types: tuple[Any, ...], where: str) -> str | None:
    """Why `value`, the field `where`, is none of `types` (a Schema among them decides for an
    object, a ListOf for a list), or None."""
    for kind in types:
        if isinstance(kind, Schema) and isinstance(value, dict):
            return kind.problem(value, f"{where}.")
        if isinstance(kind, ListOf) and isinstance(value, list):
            bad = [v for v in value if not any(has_type(v, t) for t in kind.types)]
            if not bad:
                return None
            wanted = " or ".join(kind_name(t) for t in kind.types)
            return f"{where!r} holds {type_name(bad[0])}, not {wanted}"
        if not isinstance(kind, Schema | ListOf) and has_type(value, kind):
            return None
    wanted = " or ".join(kind_name(kind) for kind in types)
    return f"{where!r} is {type_name(value)}, not {wanted}"


NUMBER = (int, float)
# A per-example record of `nclb run` (written by runner.make_record): the fields every record
# has, and those some have. The runner's RecordWriter and read_records both check it.
RUN_RECORD = Schema(
    required={
        "id": (str,),
        "prompt": (str,),
        "output": (str,),
        "answer_text": (str, None),
        "prediction": (str,),
        "gold": (str, int, float, bool, None),
        "correct": (bool,),
        "nfe": (int,),
        "gen_tokens": (int,),
        "seconds": NUMBER,
        "exit_step": (int, None),
    },
    optional={
        "computed": (int,),
        "refreshes": (int,),
        "cache_kl": NUMBER + (None,),
        "detail": (
            Schema(
                required={},
                optional={
                    "strict_correct": (bool,),
                    "lenient_correct": (bool,),
                    "verdict": (str,),
                    "sandbox": (str, None),
                },
            ),
        ),
        "trajectory": (ListOf((dict,)),),
        "canvas": (
            Schema(required={"region": (ListOf((int,)),), "answer": (ListOf((int,)), None)}),
        ),
        "kl": (
            Schema(
                required={"estimate": NUMBER, "pair_kl": (ListOf(NUMBER),)},
                optional={"sample": NUMBER, "rb": (*NUMBER, None), "estimator": (str,)},
            ),
        ),
    },
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


def record_problem(
    record: dict[str, Any],
    key: str | None,
    schema: Schema | None,
    known: Collection[Any] | None,
) -> str | None:
    """Why a parsed record is not a complete record of this run (a field missing or of the
    wrong type under `schema`; a `key` value not among `known`), or None."""
    if known is not None and key is not None and record[key] not in known:
        return f"{key} {record[key]!r} is not an example of this run"
    return schema.problem(record) if schema is not None else None


def read_json_lines(path: Path, schema: Schema | None = None) -> list[dict[str, Any]]:
    """The complete JSON objects of a .jsonl file (of `schema`'s shape, when given), read only:
    a line still being written (no newline yet), garbled or of another shape is skipped, never
    cut or moved ([] when there is no file)."""
    if not path.is_file():
        return []
    with path.open("rb") as f:
        records = [record for line in f if (record := parse_record(line, None)) is not None]
    return [r for r in records if schema is None or schema.problem(r) is None]


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
    """Rewrite `path` with `lines` through a temp file renamed over it (never half-written;
    the temp file is removed when writing it fails)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def set_aside(path: Path, kept: list[bytes], moved: list[bytes]) -> Path:
    """Append `moved` to the side file of `path` and rewrite `path` with `kept`; returns the
    side file. When either write fails (a full disk) the side file is put back as it was (an
    empty one removed) and `path` is left untouched, so no line is in both or in neither."""
    side = set_aside_path(path)
    before = side.stat().st_size if side.exists() else None
    try:
        append_lines(side, moved)
        replace_lines(path, kept)
    except BaseException:
        if before is None:
            side.unlink(missing_ok=True)
        else:
            os.truncate(side, before)
        raise
    return side


def read_records(
    path: Path,
    key: str | None = "id",
    schema: Schema | None = None,
    known: Collection[Any] | None = None,
) -> list[dict[str, Any]]:
    """The records of a JSONL file, one per `key` value (key=None: every line).

    Nothing valid is ever dropped: lines that are not a complete record (torn by a kill,
    garbled; with `schema`: a field missing or of the wrong type; with `known`: a `key` value
    not among them) and later lines repeating a key of a complete record are moved to a side
    file <stem>.set-aside-<UTC time>.jsonl beside it, the file is rewritten atomically with
    every valid record, and one warning line says what was moved (naming the first incomplete
    records) and how many records were kept. Of two lines for one key, the first complete one
    wins. Call it while holding the folder's RunLock when another process may be appending.
    """
    if not path.exists():
        return []
    records, kept, bad, incomplete, repeated, seen = [], [], [], [], [], set()
    problems: list[str] = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            record = parse_record(line, key)
            problem = None if record is None else record_problem(record, key, schema, known)
            if record is None:
                bad.append(line)
            elif problem is not None:
                incomplete.append(line)
                problems.append(f"line {number}: {problem}")
            elif key is not None and record[key] in seen:
                repeated.append(line)
            else:
                records.append(record)
                kept.append(line)
                if key is not None:
                    seen.add(record[key])
    if bad or incomplete or repeated:
        side = set_aside(path, kept, bad + incomplete + repeated)
        parts = [f"{len(bad)} unreadable line(s) (torn by a kill or garbled)"] if bad else []
        if incomplete:
            named = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            parts += [f"{len(incomplete)} incomplete record(s) ({named})"]
        parts += [f"{len(repeated)} record(s) repeating an {key}"] if repeated else []
        print(
            f"warning: {path}: moved {' and '.join(parts)} to {side.name}; "
            f"kept {len(records)} records",
            file=sys.stderr,
        )
    return records


class RecordWriter:
    """Appends one JSON line per example and flushes it to disk at once; with a schema, a
    record whose line would not be of its shape is refused (ValueError), nothing written."""

    def __init__(self, path: Path, schema: Schema | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append and fsync one record."""
        line = json.dumps(record, ensure_ascii=False)
        # checked as read back (a tuple is written as a list)
        problem = self.schema.problem(json.loads(line)) if self.schema is not None else None
        if problem is not None:
            raise ValueError(f"refusing to log an incomplete record to {self.file.name}: {problem}")
        self.file.write(line + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        """Close the file."""
        self.file.close()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temp file beside `path`, then rename it over `path` (the temp file is
    removed when writing it fails)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, read only (None when it is missing, unreadable or not an object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
