"""Logged runs read back as data: every run folder under an out_dir as one pandas DataFrame (a
row per run, or per example), and the summary table an `nclb run -m` sweep writes."""

from __future__ import annotations

import csv
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from nclb.errors import UserError
from nclb.runs.runlog import RECORDS, SUMMARY, read_json, read_json_lines
from nclb.sampler.cache import CacheConfig

# Summary keys left out of a run's row: the composed config (the identity holds what decides
# the run's outputs) and the loaded model's special token ids.
NOT_COLUMNS = ("config", "loaded_model")
SWEEP_HEADER = ("model", "task", "label", "n", "accuracy", "NFE")


def run_folders(out_dir: Path) -> list[Path]:
    """The run folders under `out_dir` (<model>/<task>/<decoder>-<hash>), sorted."""
    return sorted({p.parent for p in out_dir.glob(f"*/*/*/{RECORDS}")} | summary_folders(out_dir))


def summary_folders(out_dir: Path) -> set[Path]:
    """The run folders under `out_dir` that hold a summary.json."""
    return {p.parent for p in out_dir.glob(f"*/*/*/{SUMMARY}")}


def read_summary(folder: Path) -> dict[str, Any] | None:
    """A run folder's summary.json (None when it has none, or an unreadable one)."""
    return read_json(folder / SUMMARY)


def identity_columns(folder: Path, summary: dict[str, Any] | None) -> dict[str, Any]:
    """model, task and decoder by name, then the run identity flattened (model.*, task.*,
    decoder.* with its parameters, sampler.* with sampler.cache.*, seed) and run_dir. Without a
    summary (a run that never finished) the names come from the folder's path."""
    model, task, decoder = folder.parts[-3], folder.parts[-2], folder.name.rsplit("-", 1)[0]
    identity = full_identity((summary or {}).get("identity") or {})
    flat = pd.json_normalize(identity, sep=".").to_dict("records")[0] if identity else {}
    names = {
        "model": (identity.get("model") or {}).get("name", model),
        "task": (identity.get("task") or {}).get("name", task),
        "decoder": (identity.get("decoder") or {}).get("name", decoder),
    }
    return {**names, **flat, "run_dir": str(folder)}


def full_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A run identity with the keys it holds only when set back in: the sampler's cache (off)
    and log_trajectory (false), so every run has the same columns."""
    if not identity:
        return identity
    sampler = identity.get("sampler")
    if isinstance(sampler, dict) and "cache" not in sampler:
        sampler = {**sampler, "cache": asdict(CacheConfig())}
    return {**identity, "sampler": sampler, "log_trajectory": identity.get("log_trajectory", False)}


def run_row(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """One run's row: its identity columns, then the summary's figures flattened (n, accuracy,
    mean_nfe, seconds, examples_per_s, this_invocation.*, ...)."""
    figures = {k: v for k, v in summary.items() if k not in (*NOT_COLUMNS, "identity", "run_dir")}
    flat = pd.json_normalize(figures, sep=".").to_dict("records")[0] if figures else {}
    return {**identity_columns(folder, summary), **flat}


def load_runs(out_dir: str | Path, records: bool = False) -> pd.DataFrame:
    """Every run under `out_dir` as one DataFrame: a row per run folder with a summary.json
    (identity columns, accuracy, mean NFE, times), or with records=True a row per logged
    example (the run's identity columns, then the record's fields; folders of unfinished runs
    included). Files are only read, never changed."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a folder; pass the out_dir the runs were written to")
    rows: list[dict[str, Any]] = []
    if not records:
        for folder in sorted(summary_folders(out_dir)):
            summary = read_summary(folder)
            if summary is not None:
                rows.append(run_row(folder, summary))
        return pd.DataFrame(rows)
    for folder in run_folders(out_dir):
        identity = identity_columns(folder, read_summary(folder))
        rows.extend({**identity, **record} for record in read_json_lines(folder / RECORDS))
    return pd.DataFrame(rows)


def new_sweep_dir(out_dir: Path) -> Path:
    """A folder for one sweep, <out_dir>/sweeps/<local time>, that no earlier sweep used (a
    suffix -2, -3, ... when one started in the same second)."""
    base = out_dir / "sweeps" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    folder, suffix = base, 1
    while folder.exists():
        suffix += 1
        folder = base.with_name(f"{base.name}-{suffix}")
    return folder


def sweep_table(folders: list[Path]) -> list[tuple[str, ...]]:
    """A sweep's results, a row per setting (model, task, label, n, accuracy, mean NFE; the
    header first), read from each setting's summary.json (so it works with every launcher)."""
    rows = [SWEEP_HEADER]
    for folder in dict.fromkeys(folders):
        summary = read_summary(folder)
        if summary is None:
            model, task = folder.parts[-3:-1]
            rows.append((model, task, f"{folder.name}: no summary (the job failed)", "-", "-", "-"))
            continue
        identity, n = summary.get("identity") or {}, summary.get("n") or 0
        acc, nfe = summary.get("accuracy"), summary.get("mean_nfe")
        rows.append(
            (
                (identity.get("model") or {}).get("name", "?"),
                (identity.get("task") or {}).get("name", "?"),
                summary.get("label", folder.name),
                str(n),
                f"{acc:.3f}" if acc is not None else "-",
                f"{nfe:.1f}" if nfe is not None else "-",
            )
        )
    return rows


def write_sweep_table(folder: Path, rows: list[tuple[str, ...]]) -> None:
    """The sweep table as <folder>/summary.csv and <folder>/summary.md."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "summary.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]
    ]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
