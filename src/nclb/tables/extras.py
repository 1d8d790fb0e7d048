"""Tables built from the outputs of the experiment commands: `nclb posterior` (Table 3, kind:
posterior) and `nclb trace-score` (Figure 4, kind: correlation). Table 6 (KL, `metrics.kl=true`)
and Table 4 (evaluating the fine-tuned checkpoints) are ordinary `nclb run` grids (kind: runs).
Each writes the command summaries it read to results/logs/<stem>.json (nclb.tables.shipped);
run=false rebuilds from them where a group's out_dir holds none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nclb.config.paths import config_dir
from nclb.errors import UserError
from nclb.experiments import EXPERIMENTS
from nclb.registry import register
from nclb.runs.identity import MODEL_NOT_IDENTITY, TASK_NOT_IDENTITY
from nclb.tables.build import paper_entry, paper_numbers, wilson_interval
from nclb.tables.grid import Grid, merge_overrides, missing_input, output_stem
from nclb.tables.notes import render_note
from nclb.tables.runs import canonical
from nclb.tables.write import fmt, model_title, write_outputs

# Config keys that do not change what `nclb posterior` / `nclb trace-score` compute.
VOLATILE = ("device", "batch_size", "threads")


def require_command(name: str, what: str) -> None:
    """A one-line UserError when `nclb <name>` (its module and config) is not in this checkout."""
    import importlib.util

    experiment = EXPERIMENTS[name]
    config = config_dir() / f"{experiment.config}.yaml"
    if importlib.util.find_spec(experiment.module) is None or not config.is_file():
        raise UserError(f"{what} needs `nclb {name}`, which this checkout does not have yet")


def same_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two configs of a command compute the same outputs (device/batch/threads aside,
    and the model and task keys a run's identity leaves out, such as where the data is read)."""

    def strip(cfg: dict[str, Any]) -> Any:
        kept = {k: v for k, v in cfg.items() if k not in VOLATILE}
        for group, left_out in (("model", MODEL_NOT_IDENTITY), ("task", TASK_NOT_IDENTITY)):
            if isinstance(kept.get(group), dict):
                kept[group] = {k: v for k, v in kept[group].items() if k not in left_out}
        return canonical(kept)

    return strip(a) == strip(b)


def shipped_command_summary(
    cfg: dict[str, Any], shipped: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The shipped summary (results/logs/<stem>.json) made with this config, if any."""
    return next((s for s in shipped if same_config(s.get("config") or {}, cfg)), None)


def command_summary(
    name: str, cfg: dict[str, Any], execute: bool, log, shipped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The summary.json that `nclb <name>` wrote to cfg's out_dir for this config, running the
    command in-process when it is missing, made with other settings, or older than the model's
    local weights (a replaced checkpoint). Without a usable one in out_dir, the one `shipped`
    beside the table (nclb.tables.shipped) with the same config is taken, when there is one."""
    import importlib

    from nclb.runs.stale import weights_file

    path = Path(cfg["out_dir"]) / "summary.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        weights = weights_file({"model": cfg["model"], "task": cfg["task"]})
        fresh = weights is None or weights.stat().st_mtime <= path.stat().st_mtime
        if fresh and same_config(summary.get("config") or {}, cfg):
            log(f"logged: {path}")
            return summary
    if (summary := shipped_command_summary(cfg, shipped or [])) is not None:
        log(f"shipped: the summary of {path.parent}")
        return summary
    if not execute:
        raise UserError(
            f"no `nclb {name}` output for this setting in {path.parent}; drop run=false"
        )
    experiment = EXPERIMENTS[name]
    log(f"running nclb {name} -> {path.parent}")
    getattr(importlib.import_module(experiment.module), experiment.function)(cfg)
    return json.loads(path.read_text())


def command_groups(
    grid: Grid, name: str, extra: list[str], execute: bool, log, shipped: list[dict[str, Any]]
):
    """(group, composed config, summary) for each group of a command grid; a group whose
    `requires` input is missing is skipped when `optional: true` (a UserError otherwise),
    unless its summary is `shipped` and nothing is to be run (run=false)."""
    from nclb.config.compose import check_groups, compose

    out, skipped = [], []
    for group in grid.groups:
        overrides = merge_overrides([str(x) for x in group.get("overrides", [])], extra)
        check_groups(overrides)
        cfg = compose(EXPERIMENTS[name].config, overrides)
        message = missing_input(group)
        if message and not execute and shipped_command_summary(cfg, shipped) is not None:
            message = None  # nothing is run, so the input the command needs is not needed
        if message and group.get("optional"):
            log(f"skipped a group of {grid.name}: {message}")
            skipped.append(f"- skipped ({group.get('label', 'a group')}): {message}")
            continue
        if message:
            raise UserError(f"{grid.name}: {message}")
        out.append((group, cfg, command_summary(name, cfg, execute, log, shipped)))
    return out, skipped


def command_inputs(results: Path, stem: str, execute: bool) -> list[dict[str, Any]]:
    """The command summaries shipped beside a table, read only when nothing is run."""
    from nclb.tables.shipped import read_shipped

    return [] if execute else read_shipped(results, stem)


def ship_command_summaries(results: Path, stem: str, groups: list) -> Path:
    """Write the summary of each group a command table read to results/logs/<stem>.json,
    keyed by the group's out_dir."""
    from nclb.tables.shipped import write_log

    runs = {str(cfg["out_dir"]): summary for _, cfg, summary in groups}
    return write_log(results, stem, {"runs": dict(sorted(runs.items()))})


POSTERIOR_ROWS = (
    ("prior", "ordinary decoding (no answer given)"),
    ("posterior", "posterior p(r | c, a): gold answer pre-filled"),
    ("posterior_where_prior_wrong", "posterior, on problems ordinary decoding got wrong"),
)


def posterior_rows(
    summary: dict[str, Any],
    cfg: dict[str, Any],
    paper_ref: tuple[str, str] | None,
    setup: str = "",
) -> list[dict[str, Any]]:
    """The Table 3 rows of one `nclb posterior` summary (`setup`: the grid group's label)."""
    model, task = cfg["model"]["name"], cfg["task"]["name"]
    ref_model, ref_task = paper_ref or (model, task)
    rows = []
    for key, setting in POSTERIOR_ROWS:
        part = summary.get(key)
        if not part:
            continue
        n, ok = int(part["n"]), part.get("trace_ok")
        low, high = wilson_interval(round(ok * n), n) if ok is not None else (None, None)
        paper = (
            paper_entry("table3", ref_model, ref_task, "prior wrong")
            if key.endswith("wrong")
            else None
        )
        label, numbers = paper if paper else (None, {})
        rows.append(
            {
                "model": model,
                "task": task,
                "setup": setup,
                "problems": summary.get("problems"),
                "setting": setting,
                "traces": n,
                "trace_correct": None if ok is None else 100 * round(ok * n) / n,
                "ci_low": None if low is None else 100 * low,
                "ci_high": None if high is None else 100 * high,
                "answer_accuracy": 100 * part["accuracy"] if key == "prior" else None,
                "mean_answer_logprob": part.get("mean_answer_logprob"),
                "paper_setting": label,
                "paper_prm": numbers.get("prm"),
                "paper_gpt4o": numbers.get("gpt4o"),
            }
        )
    return rows


@register("table", "posterior")
def posterior_table(
    grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log
) -> list[Path]:
    """Table 3: the fraction of correct reasoning traces, ordinary vs posterior decoding."""

    require_command("posterior", grid.name)
    stem = output_stem(grid.name, grid.model_kind)
    shipped = command_inputs(results, stem, execute)
    groups, skipped = command_groups(grid, "posterior", extra, execute, log, shipped)
    records, lines = [], []
    for group, cfg, summary in groups:
        ref = group.get("paper_ref")
        paper_ref = (ref["model"], ref["task"]) if ref else None
        records += posterior_rows(summary, cfg, paper_ref, group.get("label", ""))
        lines.append(
            f"- {group.get('label', 'model')}: model={cfg['model']['name']} "
            f"({cfg['model'].get('path') or 'shipped checkpoint'}), task={cfg['task']['name']}: "
            f"{summary.get('problems')} problems (source={cfg.get('source')}), "
            f"{cfg.get('samples')} trace(s) each at temperature {cfg.get('temperature')}, "
            f"decoder={cfg['decoder']['name']}; traces in {summary.get('traces')}; "
            f"code revision {summary.get('git')}"
        )
    if not records:
        raise UserError(f"{grid.name}: no group could be built ({'; '.join(skipped)})")
    table = pd.DataFrame.from_records(records).round(
        {
            "trace_correct": 2,
            "ci_low": 2,
            "ci_high": 2,
            "answer_accuracy": 2,
            "mean_answer_logprob": 3,
        }
    )
    display = pd.DataFrame(
        {
            "model": table.model,
            "task": table.task,
            "setup": table.setup,
            "problems": table.problems,
            "setting": table.setting,
            "traces": table.traces,
            "correct traces % [95% CI]": [
                ("no traces" if not n else "not checkable")
                if pd.isna(v)
                else f"{v:.1f} [{lo:.1f}, {hi:.1f}]"
                for v, lo, hi, n in zip(
                    table.trace_correct, table.ci_low, table.ci_high, table.traces
                )
            ],
            "answer correct %": [fmt(v, 1) for v in table.answer_accuracy],
            "mean log p(a | c, r)": [fmt(v, 3) for v in table.mean_answer_logprob],
            "paper: setting": [fmt(v) for v in table.paper_setting],
            "paper: % correct (Qwen2.5-Math-PRM judge)": [fmt(v, 0) for v in table.paper_prm],
            "paper: % correct (GPT-4o judge)": [fmt(v, 0) for v in table.paper_gpt4o],
        }
    )
    header = [
        f"{grid.title} ({model_title(grid.model_kind)})",
        f"Generated by `{command}` from `nclb posterior` outputs (summary.json); not edited by hand.",
        "Model and data:",
        *lines,
        *skipped,
        "",
        "A trace is correct when every step recomputes (the task's checker; arith). The paper "
        "judged GSM8k traces with a PRM and GPT-4o instead. 95% Wilson intervals.",
        f"Columns 'paper: ...' are numbers REPORTED BY THE PAPER, not measured here "
        f"({paper_numbers()['table3']['source']}).",
    ]
    if note := render_note(grid.note, grid.model_kind, log=log):
        header.append(note)
    paths = write_outputs(results, stem, table, display, header)
    return [*paths, ship_command_summaries(results, stem, groups)]


MIN_OUTCOMES = 20  # fewer wrong (or correct) generations than this: correlations unreliable
CORRELATION_SERIES = (
    ("pearson_reward", "reward log p(a*|c,r), Pearson"),
    ("spearman_reward", "reward, Spearman"),
    ("pearson_confidence", "mean confidence, Pearson"),
    ("spearman_confidence", "mean confidence, Spearman"),
)


def few_outcomes(n: int, accuracy: float) -> str | None:
    """'only 1 wrong of 300 generations (< 20)' when the rarer outcome (wrong or correct) has
    fewer than MIN_OUTCOMES generations, else None."""
    wrong = round(n * (1 - accuracy))
    rarer, which = min((wrong, "wrong"), (n - wrong, "correct"))
    if rarer >= MIN_OUTCOMES:
        return None
    return f"only {rarer} {which} of {n} generations (< {MIN_OUTCOMES})"


def same_outcome(n: int, accuracy: float) -> str | None:
    """Why a correlation with correctness is undefined for a whole setup: every answer correct
    (or wrong), so correctness has no variance; None otherwise."""
    wrong = round(n * (1 - accuracy))
    if wrong == 0:
        return "every answer is correct, so correctness has no variance"
    if wrong == n:
        return "every answer is wrong, so correctness has no variance"
    return None


def draw_correlation(table: pd.DataFrame):
    """Figure 4's panels, two per setup (correlations; mean reward of correct vs wrong
    generations), with a red note in the titles of a setup whose correlations rest on fewer
    than MIN_OUTCOMES wrong (or correct) generations. Not laid out or saved."""
    from nclb.tables.figures import pyplot, series_style

    plt = pyplot()
    parts = list(table.groupby("setup", sort=False))
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 4.3 * len(parts)), squeeze=False)
    for (ax_corr, ax_mean), (setup, rows) in zip(axes, parts):
        pct = 100 * rows.fraction
        for i, (col, name) in enumerate(CORRELATION_SERIES):
            ax_corr.plot(pct, rows[col], label=name, zorder=2 + i, **series_style(i))
        ax_corr.axhline(0, color="0.5", lw=0.8)
        if rows[["pearson_reward", "spearman_reward"]].isna().all().all():
            why = same_outcome(int(rows.n.iloc[0]), rows.accuracy.iloc[0] / 100)
            ax_corr.text(50, 0.02, f"undefined: {why or 'no variance'}", ha="center")
        ax_corr.set_xlabel("% of the reasoning trace written")
        ax_corr.set_ylabel("correlation with final correctness")
        ax_mean.plot(pct, rows.mean_reward_correct, label="correct generations", **series_style(0))
        ax_mean.plot(pct, rows.mean_reward_wrong, label="wrong generations", **series_style(1))
        ax_mean.set_xlabel("% of the reasoning trace written")
        ax_mean.set_ylabel("mean reward log p(a* | c, r_so_far)")
        n, acc = int(rows.n.iloc[0]), rows.accuracy.iloc[0]
        note = few_outcomes(n, acc / 100)
        titles = (f"{setup} (n={n}, acc {acc:.1f}%)", f"{setup}: mean reward")
        for ax, title in zip((ax_corr, ax_mean), titles):
            if note:
                ax.set_title(f"{title}\nUNRELIABLE: rests on {note}", color="darkred", fontsize=10)
            else:
                ax.set_title(title)
            ax.set_xlim(-4, 104)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return fig


def correlation_rows(groups: list) -> tuple[pd.DataFrame, list[str]]:
    """Figure 4's table (one row per setup and trace fraction, from each trace-score summary)
    and one provenance line per setup."""
    records, lines = [], []
    for group, cfg, summary in groups:
        label = group.get("label", f"{cfg['model']['name']} / {cfg['task']['name']}")
        for row in summary["correlations"]:
            records.append(
                {
                    "model": cfg["model"]["name"],
                    "task": cfg["task"]["name"],
                    "setup": label,
                    "n": summary["n"],
                    "accuracy": 100 * summary["accuracy"],
                    **row,
                }
            )
        lines.append(
            f"- {label}: model={cfg['model']['name']} "
            f"({cfg['model'].get('path') or 'shipped checkpoint'}), task={cfg['task']['name']}: "
            f"the first {summary['n']} examples, greedy left-to-right k=1 decoding, final accuracy "
            f"{100 * summary['accuracy']:.1f}%, reward answer_score={cfg.get('answer_score')}; "
            f"code revision {summary.get('git')}"
        )
    return pd.DataFrame.from_records(records).round(4), lines


def correlation_display(table: pd.DataFrame) -> pd.DataFrame:
    """Figure 4's table as the Markdown/LaTeX files show it (formatted numbers)."""
    return pd.DataFrame(
        {
            "setup": table.setup,
            "n": table.n,
            "% of trace": [f"{100 * f:.0f}" for f in table.fraction],
            "reward Pearson": [fmt(v, 3) for v in table.pearson_reward],
            "reward Spearman": [fmt(v, 3) for v in table.spearman_reward],
            "confidence Pearson": [fmt(v, 3) for v in table.pearson_confidence],
            "confidence Spearman": [fmt(v, 3) for v in table.spearman_confidence],
            "mean reward, correct": [fmt(v, 2) for v in table.mean_reward_correct],
            "mean reward, wrong": [fmt(v, 2) for v in table.mean_reward_wrong],
        }
    )


@register("table", "correlation")
def correlation_figure(
    grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log
) -> list[Path]:
    """Figure 4: correlation of the partial-trace reward log p(a* | c, r_so_far) (and of the
    mean-confidence baseline) with final correctness, against the fraction of the trace."""
    from nclb.tables.figures import save

    require_command("trace-score", grid.name)
    stem = output_stem(grid.name, grid.model_kind)
    shipped = command_inputs(results, stem, execute)
    groups, skipped = command_groups(grid, "trace-score", extra, execute, log, shipped)
    if not groups:
        raise UserError(f"{grid.name}: no group could be built ({'; '.join(skipped)})")
    table, lines = correlation_rows(groups)
    fig = draw_correlation(table)
    title = f"{grid.title} ({model_title(grid.model_kind)})"
    footer = f"{command}; " + "; ".join(line[2:] for line in lines)
    paths = save(fig, results, stem, title, footer)
    header = [
        title,
        f"Generated by `{command}` from `nclb trace-score` outputs (summary.json); not edited by hand.",
        "Model and data:",
        *lines,
        *skipped,
        "",
        "Correlation (Pearson = point-biserial; Spearman) of the reward log p(a* | c, r_so_far) "
        "with the gold answer a* pre-filled, and of the partial trace's mean token confidence "
        "(baseline), with the final correctness of the full generation. The CSV has every "
        "fraction; the paper reports no numbers for this figure (only that the reward beats a 7B "
        "process reward model).",
    ]
    warnings = [
        f"WARNING, {setup}: the correlations rest on {note}; they are not reliable."
        for setup, rows in table.groupby("setup", sort=False)
        if (note := few_outcomes(int(rows.n.iloc[0]), rows.accuracy.iloc[0] / 100))
    ]
    warnings += [
        f"{setup}: the correlations are undefined (empty cells): {why}."
        for setup, rows in table.groupby("setup", sort=False)
        if (why := same_outcome(int(rows.n.iloc[0]), rows.accuracy.iloc[0] / 100))
    ]
    if warnings:
        header += ["", *warnings]
    if note := render_note(grid.note, grid.model_kind, log=log):
        header.append(note)
    display = correlation_display(table).reset_index(drop=True)
    paths += write_outputs(results, stem, table, display, header)
    return [*paths, ship_command_summaries(results, stem, groups)]
