"""`nclb table lmeval_crosscheck`: the same outputs scored by nclb's scorer and by lm-eval's.

Each grid group is one `nclb lm-eval` evaluation (run, or resumed from its run folder). Its
records.jsonl holds every output with nclb's own verdict (the contexts are nclb's examples, so
nclb's task scores them as `nclb run` would); lm_eval_samples.jsonl holds lm-eval's verdict on
the same output under each of the task's rules (filter + metric). The table counts agreement per
rule; every disagreement is listed in the notes below it and in <stem>-disagreements.csv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nclb.errors import UserError
from nclb.registry import register
from nclb.runs.runlog import RECORDS, SUMMARY, read_records
from nclb.tables.grid import Grid, merge_overrides, output_stem
from nclb.tables.notes import render_note
from nclb.tables.write import fmt, latex, markdown, model_title

DISAGREEMENT_COLUMNS = [
    "setup",
    "rule",
    "example_id",
    "gold",
    "nclb_prediction",
    "nclb_correct",
    "lm_eval_read",
    "lm_eval_correct",
    "output_end",
]


def group_outputs(group: dict[str, Any], extra: list[str], execute: bool, log) -> dict[str, Any]:
    """The evaluation of one grid group: its config, summary, records and lm-eval samples."""
    from nclb.lmeval.command import SAMPLES, evaluate, harness_identity
    from nclb.lmeval.requests_log import run_folder
    from nclb.lmeval.settings import compose_evaluation, harness_options

    cfg = compose_evaluation(merge_overrides([str(x) for x in group.get("overrides", [])], extra))
    if execute:
        log(f"nclb lm-eval for {group.get('label')} (logged requests are not decoded again)")
        folder = Path(evaluate(cfg)["run_dir"])
    else:
        from nclb.config.settings import resolve

        folder, _ = run_folder(resolve(cfg), harness_identity(harness_options(cfg)))
        if not (folder / SAMPLES).is_file():
            raise UserError(f"no `nclb lm-eval` output in {folder}; drop run=false")
    samples = [json.loads(line) for line in (folder / SAMPLES).read_text().splitlines() if line]
    return {
        "cfg": cfg,
        "summary": json.loads((folder / SUMMARY).read_text()),
        "records": {r["id"]: r for r in read_records(folder / RECORDS)},
        "samples": samples,
        "folder": folder,
    }


def short(text: Any, width: int = 70) -> str:
    """A one-line excerpt (the end of long text, where the answer is)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else "..." + flat[-(width - 3) :]


def compare(label: str, outputs: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(one row per lm-eval rule, one dict per disagreement) for one evaluation."""
    cfg = outputs["cfg"]
    by_rule: dict[tuple[str, str, str], list[tuple[dict, dict, float]]] = {}
    for sample in outputs["samples"]:
        record = outputs["records"].get(f"{sample['task']}/{sample['doc_id']}/0")
        if record is None or "correct" not in record:
            continue  # not an nclb example: nclb has no verdict to compare
        for metric, value in sample["metrics"].items():
            key = (sample["task"], sample["filter"], metric)
            by_rule.setdefault(key, []).append((record, sample, float(value)))
    rows, disagreements = [], []
    for (task, filter_, metric), items in by_rule.items():
        rule = metric if filter_ in (None, "none") else f"{metric} ({filter_})"
        nclb = [bool(r["correct"]) for r, _, _ in items]
        theirs = [v >= 0.5 for _, _, v in items]
        rows.append(
            {
                "setup": label,
                "model": cfg["model"]["name"],
                "lm_eval_task": task,
                "rule": rule,
                "n": len(items),
                "nclb_accuracy": 100 * sum(nclb) / len(items),
                "lm_eval_accuracy": 100 * sum(theirs) / len(items),
                "agree": sum(a == b for a, b in zip(nclb, theirs)),
                "only_nclb_right": sum(a and not b for a, b in zip(nclb, theirs)),
                "only_lm_eval_right": sum(b and not a for a, b in zip(nclb, theirs)),
            }
        )
        for (record, sample, _), ours, other in zip(items, nclb, theirs):
            if ours != other:
                read = sample["filtered_resps"]
                read = read[0] if isinstance(read, list) and len(read) == 1 else read
                disagreements.append(
                    {
                        "setup": label,
                        "rule": rule,
                        "example_id": record.get("example_id"),
                        "gold": record.get("gold"),
                        "nclb_prediction": record.get("prediction"),
                        "nclb_correct": ours,
                        "lm_eval_read": read if filter_ not in (None, "none") else None,
                        "lm_eval_correct": other,
                        "output_end": short(record.get("output"), 120),
                    }
                )
    return rows, disagreements


def note_line(d: dict[str, Any]) -> str:
    """One disagreement as a Markdown list item."""
    ours = "right" if d["nclb_correct"] else "wrong"
    theirs = "right" if d["lm_eval_correct"] else "wrong"
    read = f" read `{short(d['lm_eval_read'], 40)}`" if d["lm_eval_read"] is not None else ""
    return (
        f"- {d['setup']}, {d['rule']}, {d['example_id']}: gold `{short(d['gold'], 40)}`; nclb read "
        f"`{short(d['nclb_prediction'], 40)}` ({ours}); lm-eval{read} ({theirs}); output ends "
        f"`{short(d['output_end'], 60)}`"
    )


@register("table", "lmeval_crosscheck")
def crosscheck_table(
    grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log
) -> list[Path]:
    """Write results/<stem>.{md,csv,tex} and <stem>-disagreements.csv."""
    from nclb.lmeval import require_lm_eval

    require_lm_eval()
    rows, disagreements, lines = [], [], []
    for group in grid.groups:
        label = group.get("label", "evaluation")
        outputs = group_outputs(group, extra, execute, log)
        group_rows, group_disagreements = compare(label, outputs)
        rows += group_rows
        disagreements += group_disagreements
        cfg, summary = outputs["cfg"], outputs["summary"]
        lines.append(
            f"- {label}: `nclb lm-eval` tasks={cfg['tasks']} model={cfg['model']['name']} "
            f"task={cfg['task']['name']} decoder={cfg['decoder']['name']} "
            f"({'the first ' + str(cfg['limit']) if cfg.get('limit') else 'all'} documents); "
            f"{summary['nclb_scored']} outputs; run folder "
            f"{outputs['folder']}; scored at code revision {summary.get('git')} (outputs "
            "logged earlier are resumed, not decoded again)"
        )
    if not rows:
        raise UserError(f"{grid.name}: no output that both nclb and lm-eval scored")
    table = pd.DataFrame.from_records(rows).round({"nclb_accuracy": 2, "lm_eval_accuracy": 2})
    display = pd.DataFrame(
        {
            "setup": table.setup,
            "lm-eval task": table.lm_eval_task,
            "lm-eval rule": table.rule,
            "n": table.n,
            "nclb scorer %": [fmt(v, 1) for v in table.nclb_accuracy],
            "lm-eval %": [fmt(v, 1) for v in table.lm_eval_accuracy],
            "agree": table.agree,
            "only nclb right": table.only_nclb_right,
            "only lm-eval right": table.only_lm_eval_right,
        }
    )
    stem = output_stem(grid.name, grid.model_kind)
    title = f"{grid.title} ({model_title(grid.model_kind)})"
    header = [
        title,
        f"Generated by `{command}` from `nclb lm-eval` outputs; not edited by hand.",
        "Model and data:",
        *lines,
        "",
        "Each output is scored twice: by nclb's task scorer (the verdict `nclb run` gives) and "
        "by each rule of the lm-eval task (configs/lm_eval/*.yaml: a filter that extracts the "
        "answer and a metric). 'agree' counts outputs with the same verdict.",
    ]
    if note := render_note(grid.note, grid.model_kind, log=log):
        header.append(note)
    notes = [f"## Disagreements ({len(disagreements)})", ""]
    notes += [note_line(d) for d in disagreements] or ["None: every verdict agrees."]
    results.mkdir(parents=True, exist_ok=True)
    paths = [results / f"{stem}.md", results / f"{stem}.csv", results / f"{stem}.tex"]
    paths[0].write_text(markdown(display, header) + "\n" + "\n".join(notes) + "\n")
    table.to_csv(paths[1], index=False)
    paths[2].write_text(latex(display, header, stem))
    paths.append(results / f"{stem}-disagreements.csv")
    frame = pd.DataFrame.from_records(disagreements, columns=DISAGREEMENT_COLUMNS)
    frame.to_csv(paths[-1], index=False)
    return paths
