"""`nclb table NAME`: run a grid's missing runs, then write its table and figures to results/."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from nclb.config.compose import check_key
from nclb.errors import UserError
from nclb.locations import REPO_ROOT
from nclb.registry import lookup, names, register
from nclb.runs.sharding import join
from nclb.schema import Flag, OneOf, from_words, setting
from nclb.tables.committed import committed_code_stamp
from nclb.tables.grid import (
    MODEL_KINDS,
    Grid,
    load_grid,
    missing_input,
    output_stem,
    skipped_notes,
)
from nclb.threads import THREADS, use_threads

USAGE = """usage: nclb table NAME [model=tiny|llada|dream] [run=true|false] [results=DIR] [threads=auto|N]
                  [allow_dirty=true|false] [key=value ...]

NAME: a grid of configs/grids/ (listed below), or a path to a grid .yaml file. Runs the grid's
runs that are not logged yet (skipping those whose summary.json has the same resolved config and
n), then writes results/NAME.{md,csv,tex} and its
figures (.png, .svg). Other key=value pairs are passed to every run (e.g. device=cuda
batch_size=16 limit=50 out_dir=...). run=false only builds from the logs: the run folders, or
where a folder is missing (a fresh clone) the summaries the table was last built from
(results/logs/NAME.json, written with every table). threads: torch CPU
threads (default 1; auto: torch's default, one per core). Outputs come from committed code: with
uncommitted changes in src/, configs/ or scripts/, writing the repository's results/ is refused
(allow_dirty=true overrides) and other outputs are stamped UNCOMMITTED CODE."""


def make_targets(root: Path = REPO_ROOT) -> list[str]:
    """The grids that the repository's Makefile has a target for (`make NAME MODEL=...`): the
    names of its PAPER_TARGETS line; none outside a checkout."""
    makefile = root / "Makefile"
    lines = makefile.read_text().splitlines() if makefile.is_file() else []
    for line in lines:
        name, assign, value = line.partition(":=")
        if assign and name.strip() == "PAPER_TARGETS":
            return value.split()
    return []


@dataclass
class TableOptions:
    """The keys `nclb table` reads itself (every other key=value goes to each run)."""

    model: str = setting("tiny", OneOf(options=MODEL_KINDS))
    run: bool = setting(True, Flag())
    results: str = "results"
    threads: int | str = setting(1, THREADS)
    allow_dirty: bool = setting(False, Flag())


def parse_args(argv: list[str]) -> tuple[str, TableOptions, list[str]]:
    """(grid name, table options, run overrides) from `nclb table` arguments."""
    names = [a for a in argv if "=" not in a]
    if len(names) != 1:
        raise UserError("nclb table needs exactly one table NAME (see `nclb table --help`)")
    known = {f.name for f in fields(TableOptions)}
    words, extra = {}, []
    for item in argv:
        if "=" not in item:
            continue
        key, _, value = item.partition("=")
        if key in known:
            words[key] = value
        else:
            check_key(item)
            extra.append(item)
    return names[0], from_words(TableOptions, words, "nclb table"), extra


def check_requires(grid: Grid) -> None:
    """A one-line UserError for the first missing required input of the grid's groups (an
    `optional: true` group is left out of the grid instead: Grid.skipped)."""
    for group in grid.groups:
        message = missing_input(group)
        if message and not group.get("optional"):
            raise UserError(f"{grid.name}: {message}")


@register("table", "runs")
def make_runs_table(
    grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log=print
) -> list[Path]:
    """Run what is missing, then write the table (md/csv/tex) and the grid's figures."""
    from nclb.tables.build import build_frame, table_frame
    from nclb.tables.contrast import contrast_notes
    from nclb.tables.figures import FIGURES
    from nclb.tables.notes import render_note
    from nclb.tables.runs import ensure_runs, known_summary, plan
    from nclb.tables.shipped import read_shipped, shipped_grid, write_shipped
    from nclb.tables.write import model_title, provenance, write_table

    stem = output_stem(grid.name, grid.model_kind)
    required = tuple(m["source"] for m in grid.metrics if not m.get("optional"))
    shipped = [] if execute else read_shipped(results, stem)
    grid = shipped_grid(grid, shipped, extra, required)
    if not grid.rows:
        raise UserError(f"table {grid.name} has no rows for model={grid.model_kind}")
    if execute:
        check_requires(grid)
    for spec in grid.figures:
        if spec.get("kind") not in FIGURES:
            raise UserError(
                f"grid {grid.name}: figure kind {spec.get('kind')!r} is not one of {sorted(FIGURES)}"
            )
    planned = plan(grid.rows, extra, required)
    if not execute and not all(known_summary(p, shipped) for p in planned):
        check_requires(grid)
    summaries = ensure_runs(planned, execute=execute, log=log, shipped=shipped)
    if not join().leader:
        return []  # under torchrun the other ranks decode their share; rank 0 writes
    frame = build_frame(grid.rows, summaries, grid.paper, grid.metrics)
    title = f"{grid.title} ({model_title(grid.model_kind)})"
    table = table_frame(frame)
    paths = []
    if not table.empty:
        written = render_note(grid.note, grid.model_kind, frame, log)
        note = "\n\n".join([written, *contrast_notes(table), *skipped_notes(grid)])
        note = note.strip()
        paths += write_table(table, results, stem, title, command, summaries, grid.paper, note)
    footer = f"{command}; " + "; ".join(provenance(summaries))
    for spec in grid.figures:
        fig_stem = output_stem(spec.get("name", grid.name), grid.model_kind)
        fig_title = f"{spec.get('title', grid.title)} ({model_title(grid.model_kind)})"
        paths += FIGURES[spec["kind"]](frame, results, fig_stem, fig_title, footer)
        if fig_stem != stem:
            data = frame.drop(columns=["in_table"]).copy()
            data["swept"] = [" ".join(f"{k}={v}" for k, v in s.items()) for s in data.swept]
            data.to_csv(results / f"{fig_stem}.csv", index=False)
            paths.append(results / f"{fig_stem}.csv")
    paths.append(write_shipped(results, stem, [p.folder for p in planned], summaries))
    return paths


def make_table(argv: list[str], log=print) -> list[Path]:
    """`nclb table ...`: the paths written."""
    name, options, extra = parse_args(argv)
    grid = load_grid(name, options.model)
    shown = " ".join([name, f"model={options.model}", *extra])
    command = (
        f"make {name} MODEL={options.model}"
        if not extra and name in make_targets() and options.results == "results"
        else f"nclb table {shown}"
    )
    results = Path(options.results)
    stamp = committed_code_stamp(results, options.allow_dirty)
    if stamp:
        command = f"{command} [{stamp}]"
    use_threads(options.threads)
    if grid.kind not in names("table"):
        raise UserError(f"grid {name}: kind {grid.kind!r} is not one of {names('table')}")
    shard = join()
    quiet = log if shard.leader else lambda *args, **kwargs: None
    paths = lookup("table", grid.kind)(grid, results, options.run, extra, command, quiet)
    paths = shard.from_leader(paths)
    for path in paths:
        log(f"wrote {path}" if shard.leader else f"rank {shard.rank}: rank 0 wrote {path}")
    return paths


def table_command(argv: list[str]) -> None:
    """Entry of `nclb table` (for nclb.cli.COMMANDS)."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    make_table(argv)
