"""Tables built from the outputs of the posterior-trace commands (issue 7): `nclb posterior`
(Table 3), and the not-yet-available fine-tuning (Table 4) and correlation (Figure 4) outputs.

Table 6 (KL) and Table 4's evaluation are ordinary `nclb run` grids (kind: runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nclb.config import config_dir
from nclb.errors import UserError
from nclb.tables.build import paper_entry, paper_numbers, wilson_interval
from nclb.tables.grid import Grid, merge_overrides
from nclb.tables.runs import canonical
from nclb.tables.write import fmt, latex, markdown, model_title

# Config keys that do not change what `nclb posterior` computes.
POSTERIOR_VOLATILE = ("device", "batch_size", "threads")


def require_command(name: str, config: str, what: str) -> None:
    """A one-line UserError when `nclb <name>` (and configs/<config>.yaml) is not available."""
    from nclb import cli

    if name not in cli.COMMANDS or not (config_dir() / f"{config}.yaml").is_file():
        raise UserError(f"{what} needs `nclb {name}`, which this checkout does not have yet")


def same_posterior_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two `nclb posterior` configs compute the same traces."""

    def strip(cfg: dict[str, Any]) -> Any:
        return canonical({k: v for k, v in cfg.items() if k not in POSTERIOR_VOLATILE})

    return strip(a) == strip(b)


def posterior_summary(cfg: dict[str, Any], execute: bool, log) -> dict[str, Any]:
    """The summary.json of `nclb posterior` for `cfg`, running it when missing or different."""
    path = Path(cfg["out_dir"]) / "summary.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        if same_posterior_config(summary.get("config") or {}, cfg):
            log(f"logged: {path}")
            return summary
    if not execute:
        raise UserError(
            f"no `nclb posterior` output for this setting in {path.parent}; drop run=false"
        )
    from nclb.posterior import posterior

    log(f"running nclb posterior -> {path.parent}")
    return posterior(cfg)


POSTERIOR_ROWS = (
    ("prior", "ordinary decoding (no answer given)"),
    ("posterior", "posterior p(r | c, a): gold answer pre-filled"),
    ("posterior_where_prior_wrong", "posterior, on problems ordinary decoding got wrong"),
)


def posterior_rows(
    summary: dict[str, Any], cfg: dict[str, Any], paper_ref: tuple[str, str] | None
) -> list[dict[str, Any]]:
    """The Table 3 rows of one `nclb posterior` summary."""
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


def posterior_table(
    grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log
) -> list[Path]:
    """Table 3: the fraction of correct reasoning traces, ordinary vs posterior decoding."""
    require_command("posterior", "posterior", grid.name)
    from nclb.cli import check_groups, compose

    records, lines = [], []
    for group in grid.groups:
        overrides = merge_overrides([str(x) for x in group.get("overrides", [])], extra)
        check_groups(overrides)
        cfg = compose("posterior", overrides)
        summary = posterior_summary(cfg, execute, log)
        ref = group.get("paper_ref")
        records += posterior_rows(summary, cfg, (ref["model"], ref["task"]) if ref else None)
        lines.append(
            f"- model={cfg['model']['name']} ({cfg['model'].get('path') or 'shipped checkpoint'}), "
            f"task={cfg['task']['name']}: {summary.get('problems')} problems (source={cfg.get('source')}), "
            f"{cfg.get('samples')} trace(s) each at temperature {cfg.get('temperature')}, "
            f"decoder={cfg['decoder']['name']}; traces in {summary.get('traces')}; "
            f"code revision {summary.get('git')}"
        )
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
            "problems": table.problems,
            "setting": table.setting,
            "traces": table.traces,
            "correct traces % [95% CI]": [
                "not checkable" if pd.isna(v) else f"{v:.1f} [{lo:.1f}, {hi:.1f}]"
                for v, lo, hi in zip(table.trace_correct, table.ci_low, table.ci_high)
            ],
            "answer correct %": [fmt(v, 1) for v in table.answer_accuracy],
            "mean log p(a | c, r)": [fmt(v, 3) for v in table.mean_answer_logprob],
            "paper: setting": [fmt(v) for v in table.paper_setting],
            "paper: % correct (Qwen2.5-Math-PRM judge)": [fmt(v, 0) for v in table.paper_prm],
            "paper: % correct (GPT-4o judge)": [fmt(v, 0) for v in table.paper_gpt4o],
        }
    )
    title = f"{grid.title} ({model_title(grid.model_kind)})"
    header = [
        title,
        f"Generated by `{command}` from `nclb posterior` outputs (summary.json); not edited by hand.",
        "Model and data:",
        *lines,
        "",
        "A trace is correct when every step recomputes (the task's checker; arith). The paper "
        "judged GSM8k traces with a PRM and GPT-4o instead. 95% Wilson intervals.",
        f"Columns 'paper: ...' are numbers REPORTED BY THE PAPER, not measured here "
        f"({paper_numbers()['table3']['source']}).",
    ]
    if grid.note:
        header.append(grid.note.strip())
    from nclb.tables.make import output_stem

    stem = output_stem(grid.name, grid.model_kind)
    results.mkdir(parents=True, exist_ok=True)
    paths = [results / f"{stem}.md", results / f"{stem}.csv", results / f"{stem}.tex"]
    paths[0].write_text(markdown(display, header))
    table.to_csv(paths[1], index=False)
    paths[2].write_text(latex(display, header, stem))
    return paths


def not_ready(what: str):
    """A builder that fails with one line naming the missing piece."""

    def builder(grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log):
        raise UserError(f"{grid.name} needs {what}, which this checkout does not have yet")

    return builder


BUILDERS = {
    "posterior": posterior_table,
    "correlation": not_ready("partial-trace scoring output (the Figure 4 correlation, issue 7)"),
}
