"""From run summaries to a pandas table: accuracy with a Wilson 95% CI, mean NFE, speed-up
against the group's k=1 baseline, and the paper's reported numbers beside ours."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nclb.errors import UserError
from nclb.tables.grid import Row

PAPER_FILE = Path(__file__).with_name("paper.yaml")
Z95 = 1.959963984540054

COLUMNS = [
    "model",
    "task",
    "n",
    "setting",
    "decoder",
    "block",
    "gamma",
    "accuracy",
    "ci_low",
    "ci_high",
    "mean_nfe",
    "speedup",
    "exit_rate",
    "paper_setting",
    "paper_accuracy",
    "paper_nfe",
    "paper_speedup",
]


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (default 95%), as fractions."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


@cache
def paper_numbers() -> dict[str, Any]:
    """The paper's reported numbers (src/nclb/tables/paper.yaml; copied from PAPER.md)."""
    return yaml.safe_load(PAPER_FILE.read_text())


def display_name(key: str) -> str:
    """A model or task key as the paper names it (llada -> LLaDA-8B-Instruct)."""
    return paper_numbers().get("names", {}).get(key, key)


def paper_entry(
    table: str | None, model: str, task: str, key: str | None
) -> tuple[str, dict[str, Any]] | None:
    """(label, numbers) of the paper's setting `key` for model/task in `table`, if reported."""
    if not table or not key:
        return None
    numbers = paper_numbers().get(table, {}).get(model, {}).get(task, {}).get(key)
    if not numbers:
        return None
    return f"{display_name(model)} {display_name(task)}, {key}", numbers


def summary_row(row: Row, summary: dict[str, Any], paper_table: str | None) -> dict[str, Any]:
    """One table row (numbers as fractions/floats; formatting is left to the writers)."""
    ident = summary["identity"]
    model, task = ident["model"]["name"], ident["task"]["name"]
    n = int(summary["n"])
    successes = round(summary["accuracy"] * n)
    low, high = wilson_interval(successes, n)
    ref_model, ref_task = row.paper_ref or (model, task)
    paper = paper_entry(paper_table, ref_model, ref_task, row.paper)
    label, numbers = paper if paper else (None, {})
    return {
        "model": model,
        "task": task,
        "n": n,
        "setting": row.label,
        "decoder": summary.get("label", ""),
        "block": ident["sampler"]["block"],
        "gamma": ident["sampler"].get("gamma"),
        "accuracy": 100 * successes / n,
        "ci_low": 100 * low,
        "ci_high": 100 * high,
        "mean_nfe": summary["mean_nfe"],
        "speedup": None,
        "exit_rate": summary.get("exit_rate"),
        "lenient_accuracy": lenient_accuracy(summary),
        "paper_setting": label,
        "paper_accuracy": numbers.get("accuracy"),
        "paper_nfe": numbers.get("nfe"),
        "paper_speedup": numbers.get("speedup"),
    }


def lenient_accuracy(summary: dict[str, Any]) -> float | None:
    """The lenient accuracy (%) of a run whose `accuracy` is the strict verdict, where the two
    differ (docs/scoring.md); None otherwise."""
    lenient = summary.get("accuracy_lenient")
    if lenient is None or summary.get("verdict") != "strict":
        return None
    return None if round(lenient, 9) == round(summary["accuracy"], 9) else 100 * lenient


def dotted(data: dict[str, Any], path: str) -> Any:
    """data['a']['b'] for path 'a.b' (None where a key is missing)."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def metric_columns(metrics: list[dict[str, Any]]) -> list[str]:
    """The CSV columns of a grid's extra metrics (column, and column_stderr where given)."""
    cols = []
    for m in metrics:
        cols += [m["column"]] + ([f"{m['column']}_stderr"] if m.get("stderr") else [])
    return cols


def metric_values(
    row: Row, summary: dict[str, Any], metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    """The extra metric columns of one row; a UserError when a summary lacks one."""
    values = {}
    for m in metrics:
        value = dotted(summary, m["source"])
        if value is None and not m.get("optional"):
            where = summary.get("run_dir", "its run folder")
            raise UserError(
                f"{m.get('missing', 'the summary lacks ' + m['source'])} (row {row.label}, {where})"
            )
        values[m["column"]] = value
        if m.get("stderr"):
            values[f"{m['column']}_stderr"] = dotted(summary, m["stderr"])
    return values


def build_frame(
    rows: list[Row],
    summaries: list[dict[str, Any]],
    paper_table: str | None,
    metrics: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """All rows (table and figure-only) as a DataFrame with `series`, `in_table`, `group`.

    speedup = the NFE of the group's baseline row (its k=1 run) / the row's NFE.
    """
    records = []
    for row, summary in zip(rows, summaries):
        rec = summary_row(row, summary, paper_table)
        rec.update(metric_values(row, summary, metrics or []))
        rec.update(group=row.group, series=row.series, in_table=row.in_table, swept=row.swept)
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["metrics"] = list(metrics or [])
    if frame.empty:
        return pd.DataFrame(columns=[*COLUMNS, "group", "series", "in_table", "swept"])
    for index, row in enumerate(rows):
        if not row.baseline:
            continue
        same = frame[(frame.group == row.group) & (frame.setting == row.baseline)]
        same = same.sort_values("in_table", ascending=False)
        base_nfe = same.mean_nfe.iloc[0]
        frame.loc[index, "speedup"] = base_nfe / frame.loc[index, "mean_nfe"]
    frame["speedup"] = frame["speedup"].astype(float)
    return frame


def table_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows shown in the table, in the CSV column order (empty paper columns kept)."""
    extra = metric_columns(frame.attrs.get("metrics", []))
    shown = frame[frame.in_table.astype(bool)]
    if "lenient_accuracy" in shown and shown.lenient_accuracy.notna().any():
        extra.append("lenient_accuracy")  # only where a strict accuracy differs from it
    out = shown[[*COLUMNS, *extra]].reset_index(drop=True)
    out.attrs["metrics"] = frame.attrs.get("metrics", [])
    out = out.round(
        {
            "accuracy": 2,
            "ci_low": 2,
            "ci_high": 2,
            "mean_nfe": 2,
            "speedup": 2,
            "lenient_accuracy": 2,
        }
    )
    out.attrs["metrics"] = frame.attrs.get("metrics", [])
    return out
