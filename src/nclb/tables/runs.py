"""Run the missing runs of a grid, in-process through `nclb.runs.runner.run`, and collect summaries.

A run counts as logged when its folder (outputs/runs/<model>/<task>/<decoder>-<hash>, the hash
over the resolved model/task/decoder/sampler settings and seed) holds a summary.json whose
identity equals the resolved one and whose n is the number of examples asked for (`limit`, or a
full-set run when limit is null), or whose records hold all of those examples. Logged runs are
not run again; a logged run of the same settings with more examples is cut down to the first
`limit` from its records. A summary older than the model's local weights file (a replaced
checkpoint) or lacking a metric the table needs is redone from scratch (resume=false).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nclb.errors import UserError
from nclb.runs.identity import run_dir, settings_identity
from nclb.runs.runlog import RECORDS, RUN_RECORD, SUMMARY, read_json_lines
from nclb.runs.stale import weights_file
from nclb.tables.build import dotted
from nclb.tables.grid import Row


@dataclass
class PlannedRun:
    """A grid row resolved to its run folder."""

    row: Row
    cfg: dict[str, Any]
    folder: Path
    identity: dict[str, Any]
    limit: int | None
    required: tuple[str, ...] = ()


def canonical(data: Any) -> Any:
    """`data` as it reads back from JSON (tuples -> lists, paths -> str), for comparisons."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def plan(
    rows: list[Row], extra: list[str] | None = None, required: tuple[str, ...] = ()
) -> list[PlannedRun]:
    """Compose and validate every row's config (with `extra` overrides last) before any run.

    `required`: dotted summary keys (e.g. `kl.estimate`) a logged run must have to count.
    """
    from nclb.config.compose import check_added_keys, check_groups, compose
    from nclb.config.settings import resolve
    from nclb.tables.grid import merge_overrides

    planned = []
    for row in rows:
        overrides = merge_overrides(row.overrides, extra or [])
        check_groups(overrides)
        cfg = compose("config", overrides)
        check_added_keys("config", overrides)
        s = resolve(cfg)
        identity = settings_identity(s)
        folder = run_dir(s.out_dir, identity)
        planned.append(PlannedRun(row, cfg, folder, identity, s.limit, tuple(required)))
    return planned


def logged_summary(run: PlannedRun) -> dict[str, Any] | None:
    """The run's summary.json if it covers the same resolved settings and n, else None."""
    path = run.folder / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if canonical(summary.get("identity")) != canonical(run.identity):
        return None
    if any(dotted(summary, key) is None for key in run.required) or weights_changed(run):
        return None
    if same_examples(run, summary):
        return summary
    return subset_summary(run, summary)


def same_examples(run: PlannedRun, summary: dict[str, Any]) -> bool:
    """Whether a summary covers exactly the examples the run asks for: `limit` of them, all of
    a smaller task asked for with the same limit, or a full-set run when limit is null."""
    n, limit = summary.get("n"), (summary.get("config") or {}).get("limit")
    if not n:
        return False
    if run.limit is None:
        return limit is None
    return n == run.limit or (n < run.limit and limit == run.limit)


def shipped_summary(run: PlannedRun, shipped: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The summary among a table's shipped ones (nclb.tables.shipped) with the run's identity,
    n and required metrics; None if there is none."""
    for summary in shipped:
        if (
            canonical(summary.get("identity")) == canonical(run.identity)
            and same_examples(run, summary)
            and all(dotted(summary, key) is not None for key in run.required)
        ):
            return summary
    return None


def known_summary(run: PlannedRun, shipped: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's summary without running it: logged in its folder, else among the shipped ones."""
    return logged_summary(run) or shipped_summary(run, shipped)


def subset_summary(run: PlannedRun, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of the first `limit` examples (all when limit is null), computed from the
    records of a logged run of the same settings (None if any of those examples is missing).

    The records, not summary.json, decide: the summary holds the n of the folder's last
    invocation, which may have asked for fewer examples than the folder holds. Nothing is rerun
    or rewritten, so a run shared with other users' larger `limit` is reused."""
    if run.required:
        return None
    from nclb.runs.runner import summarize
    from nclb.tasks.build import build_task

    wanted = [ex.id for ex in build_task(dict(run.identity["task"])).examples(run.limit)]
    by_id = {r["id"]: r for r in read_json_lines(run.folder / RECORDS, RUN_RECORD)}
    if not wanted or any(i not in by_id for i in wanted):
        return None
    config = {**(summary.get("config") or {}), "limit": run.limit}
    out = summarize([by_id[i] for i in wanted], 0, 0.0, config, run.folder)
    out.update(
        label=summary.get("label"),
        identity=summary["identity"],
        git=summary.get("git"),
        subset_of=f"the first {len(wanted)} of {len(by_id)} logged examples",
    )
    return out


def weights_changed(run: PlannedRun) -> bool:
    """Whether the model's local weights file is newer than the logged summary (a replaced
    checkpoint: the run identity holds the model config, not the weights)."""
    path, weights = run.folder / SUMMARY, weights_file(run.identity)
    if weights is None or not path.is_file():
        return False
    return weights.stat().st_mtime > path.stat().st_mtime


def stale_records(run: PlannedRun) -> bool:
    """Whether the folder's records must be redone, not resumed: its summary lacks a required
    metric (logged e.g. without metrics.kl=true), or the checkpoint was replaced since."""
    path = run.folder / SUMMARY
    if not path.is_file():
        return False
    if weights_changed(run):
        return True
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return any(dotted(summary, key) is None for key in run.required)


def ensure_runs(
    planned: list[PlannedRun],
    execute: bool = True,
    log=print,
    shipped: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The summary of every planned run, running the ones not logged yet (when `execute`).

    Runs sharing a folder are run once. Without `execute`, a missing run is a UserError.
    Logged summaries are read once, up front: a later rewrite of the same folder by another
    process (e.g. `nclb run` with another limit) does not change this table. A run whose
    folder holds no usable summary is taken from `shipped` (the summaries a table was last
    built from, kept beside it: nclb.tables.shipped) when one there matches it.
    """
    from nclb.runs.runner import run

    summaries: dict[Path, dict[str, Any]] = {}
    for p in planned:
        summary = known_summary(p, shipped or [])
        if summary is not None:
            summaries[p.folder] = summary
    missing = [p for p in planned if p.folder not in summaries]
    todo = list({p.folder: p for p in missing}.values())
    if todo and not execute:
        names = ", ".join(f"{p.row.label} ({p.folder})" for p in todo[:3])
        more = f" and {len(todo) - 3} more" if len(todo) > 3 else ""
        raise UserError(f"{len(todo)} runs are not logged yet: {names}{more}; drop run=false")
    shared = f" (rows with the same settings share one run: {len(todo)} to make)"
    log(
        f"{len(planned)} rows in the grid: {len(planned) - len(missing)} logged, "
        f"{len(missing)} not yet" + (shared if len(todo) != len(missing) else "")
    )
    for i, p in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {p.row.label}: {' '.join(p.row.overrides)}")
        cfg = {**p.cfg, "resume": False} if stale_records(p) else p.cfg
        summaries[p.folder] = run(cfg)
    out = []
    for p in planned:
        summary = summaries.get(p.folder)
        if summary is None:
            raise UserError(f"run {p.row.label} left no usable summary in {p.folder}")
        out.append(summary)
    return out
