"""Experiment grids (configs/grids/<name>.yaml): which runs a paper table or figure needs.

A grid file holds, per model kind (tiny | llada | dream), a list of groups. A group is one
model/task setting (its `overrides`, e.g. `[model=tiny, task=arith, limit=200]`) and its rows:

    rows:
      - {label: "k=1", set: [decoder=ktoken, k=1], paper: "k=1"}
      - {series: "MED lam=0.2", set: [decoder=med, lam=0.2], sweep: {gamma: [null, 0.1]},
         table: false}

A row with `sweep` expands to one row per combination of the swept values (label = the row's
label, if any, + the non-null swept values, e.g. "MED lam=0.2"; `paper: true` looks the paper's
number up under that label). `table: false` rows feed the figures only. `baseline` names the label of
the group's k=1 row (speed-ups are against it); `paper_ref: {model, task}` picks the paper's
numbers of another model/task (the tiny model is shown beside the analogous paper setting).

Top-level `metrics: [{column, source, stderr, header, digits, missing, contrast}]` adds columns
read from each summary.json (dotted paths, e.g. `kl.rb`); a summary without `source` is an error
whose message is `missing`; `contrast` adds a noise note under the table (nclb.tables.contrast).
`metrics_from: <grid>` takes those columns from another grid instead of repeating them. `options`
holds settings of non-run builders (kind != runs).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nclb.config.compose import override_value
from nclb.config.paths import config_dir
from nclb.errors import UserError

MODEL_KINDS = ("tiny", "llada", "dream")


@dataclass
class Row:
    """One run of a grid and where it goes in the table/figures."""

    group: int
    label: str
    overrides: list[str]
    series: str | None = None
    paper: str | None = None
    paper_ref: tuple[str, str] | None = None
    in_table: bool = True
    swept: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None


@dataclass
class Grid:
    """A parsed grid for one model kind."""

    name: str
    title: str
    kind: str
    paper: str | None
    model_kind: str
    rows: list[Row]
    figures: list[dict[str, Any]]
    note: Any = ""  # text, or per-model sentences with fields (nclb.tables.notes)
    path: Path | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # optional groups whose input is missing
    left_out: dict[int, list[Row]] = field(default_factory=dict)  # their rows, by group index


def grid_dir() -> Path:
    """The folder of grid YAML files: configs/grids/ (under $NCLB_CONFIG_DIR when set)."""
    return config_dir() / "grids"


def grid_names() -> list[str]:
    """The names of the grids in grid_dir()."""
    return sorted(p.stem for p in grid_dir().glob("*.yaml"))


def grid_path(name: str) -> Path:
    """The YAML file of a grid: a name in configs/grids/ or a path to a .yaml file."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise UserError(f"grid file {name} does not exist")
        return path
    path = grid_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UserError(
            f"unknown table {name!r}; choose one of {grid_names()} or a .yaml grid file"
        )
    return path


def override_key(item: str) -> str:
    """The key of a key=value override (without Hydra's +/~ prefixes)."""
    return item.lstrip("+~").partition("=")[0]


def merge_overrides(*lists: list[str]) -> list[str]:
    """Concatenate override lists; a later value of the same key replaces an earlier one."""
    merged: dict[str, str] = {}
    for items in lists:
        for item in items:
            if "=" not in item:
                raise UserError(f"override {item!r} must be key=value")
            merged.pop(override_key(item), None)
            merged[override_key(item)] = item
    return list(merged.values())


def expand_row(spec: dict[str, Any], group: int, defaults: dict[str, Any]) -> list[Row]:
    """The rows of one row spec (one row, or one per combination of its sweep)."""
    unknown = set(spec) - {"label", "set", "series", "paper", "table", "sweep"}
    if unknown:
        raise UserError(f"grid row {spec} has unknown keys {sorted(unknown)}")
    base = [str(x) for x in spec.get("set", [])]
    sweep = spec.get("sweep") or {}
    keys = list(sweep)
    rows = []
    for values in itertools.product(*(list(sweep[k]) for k in keys)):
        swept = dict(zip(keys, values))
        extra = [f"{k}={override_value(v)}" for k, v in swept.items()]
        series = spec.get("series")
        values = [f"{k}={v}" for k, v in swept.items() if v is not None]
        label = " ".join([spec.get("label", "")] + values).strip() or series
        if not label:
            raise UserError(f"grid row {spec} needs a label, a series or a sweep")
        paper = label if spec.get("paper") is True else spec.get("paper")
        rows.append(
            Row(
                group=group,
                label=label,
                overrides=merge_overrides(defaults["overrides"], base, extra),
                series=series,
                paper=paper,
                paper_ref=defaults["paper_ref"],
                in_table=bool(spec.get("table", True)),
                swept=swept,
                baseline=defaults["baseline"],
            )
        )
    return rows


def load_grid(name: str, model_kind: str = "tiny") -> Grid:
    """Parse configs/grids/<name>.yaml (or a .yaml path) for one model kind."""
    path = grid_path(name)
    data = yaml.safe_load(path.read_text()) or {}
    models = data.get("models") or {}
    if model_kind not in models:
        raise UserError(
            f"table {data.get('name', path.stem)} has no grid for model={model_kind}; "
            f"it has {sorted(models)}"
        )
    rows: list[Row] = []
    skipped: list[str] = []
    left_out: dict[int, list[Row]] = {}
    for index, group in enumerate(models[model_kind] or []):
        ref = group.get("paper_ref")
        defaults = {
            "overrides": [str(x) for x in group.get("overrides", [])],
            "paper_ref": (ref["model"], ref["task"]) if ref else None,
            "baseline": group.get("baseline"),
        }
        group_rows = [
            r for spec in group.get("rows", []) for r in expand_row(spec, index, defaults)
        ]
        labels = {r.label for r in group_rows}
        if defaults["baseline"] and defaults["baseline"] not in labels:
            raise UserError(
                f"grid {path}: baseline {defaults['baseline']!r} is not a row label of group "
                f"{index} ({sorted(labels)})"
            )
        message = missing_input(group)
        if message and group.get("optional"):
            name = group.get("panel") or group.get("label") or f"group {index}"
            split = f" ({group['split']})" if group.get("split") else ""
            skipped.append(f"{name}{split}: {message}")
            left_out[index] = group_rows
            continue
        rows.extend(group_rows)
    return Grid(
        name=data.get("name", path.stem),
        title=data.get("title", path.stem),
        kind=data.get("kind", "runs"),
        paper=data.get("paper"),
        model_kind=model_kind,
        rows=rows,
        figures=list(data.get("figures") or []),
        note=data.get("note", ""),
        path=path,
        metrics=_metrics(data),
        options=dict(data.get("options") or {}),
        groups=list(models[model_kind] or []),
        skipped=skipped,
        left_out=left_out,
    )


def _metrics(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A grid's extra columns: its own `metrics`, or those of the grid `metrics_from` names."""
    source = data.get("metrics_from")
    if source is None:
        return list(data.get("metrics") or [])
    if data.get("metrics"):
        raise UserError(f"grid {data.get('name')}: give metrics or metrics_from, not both")
    return list((yaml.safe_load(grid_path(source).read_text()) or {}).get("metrics") or [])


def output_stem(name: str, model_kind: str) -> str:
    """results/<name> for the tiny model, results/<name>-<model> for the others."""
    return name if model_kind == "tiny" else f"{name}-{model_kind}"


def with_groups_back(grid: Grid, covered) -> Grid:
    """The grid with each left-out optional group put back whose rows `covered(rows)` says are
    all known without running (their summaries shipped beside the table: the missing input is
    only needed to make the runs)."""
    back = {i: rows for i, rows in grid.left_out.items() if covered(rows)}
    if not back:
        return grid
    rows = sorted([*grid.rows, *(r for rows in back.values() for r in rows)], key=lambda r: r.group)
    kept = [(i, line) for i, line in zip(grid.left_out, grid.skipped) if i not in back]
    return dataclasses.replace(
        grid,
        rows=rows,
        skipped=[line for _, line in kept],
        left_out={i: grid.left_out[i] for i, _ in kept},
    )


def skipped_notes(grid: Grid) -> list[str]:
    """One note line per optional group left out because its input is missing."""
    return [f"Left out (optional, input missing): {line}" for line in grid.skipped]


def missing_input(group: dict[str, Any]) -> str | None:
    """The first input a grid group lists under `requires` that does not exist (e.g. a
    checkpoint another command makes: `{path: outputs/table4/base, missing: how to make it}`),
    as a message; None when all exist."""
    for req in group.get("requires") or []:
        if not Path(req["path"]).exists():
            return f"{req['path']} does not exist; {req['missing']}"
    return None
