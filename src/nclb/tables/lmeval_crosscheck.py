"""`nclb table lmeval_crosscheck`: the same outputs scored by nclb's scorer and by lm-eval's.

Each grid group is one `nclb lm-eval` evaluation (run, or resumed from its run folder). Its
records.jsonl holds every output with nclb's own verdict (the contexts are nclb's examples, so
nclb's task scores them as `nclb run` would); lm_eval_samples.jsonl holds lm-eval's verdict on
the same output under each of the task's rules (filter + metric). The table counts agreement per
rule; every disagreement is listed in the notes below it and in <stem>-disagreements.csv.
What the table reads of each evaluation (its summary, both verdicts on every output, the end of
each output) is shipped to results/logs/<stem>.json; run=false rebuilds from it where the run
folder is missing, without lm-eval installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nclb.errors import UserError
from nclb.registry import register
from nclb.runs.identity import run_key
from nclb.runs.runlog import RECORDS, SUMMARY, read_records
from nclb.tables.extras import same_config
from nclb.tables.grid import Grid, merge_overrides, output_stem
from nclb.tables.notes import render_note
from nclb.tables.shipped import read_log, write_log
from nclb.tables.write import fmt, latex, markdown, model_title

OUTPUT_END = 120  # characters of an output's end a disagreement shows
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


def group_outputs(
    group: dict[str, Any], extra: list[str], execute: bool, log, shipped: dict[str, Any]
) -> dict[str, Any]:
    """The evaluation of one grid group: its config, summary, records and lm-eval samples
    (run=false: from its run folder, else from `shipped`, the table's shipped inputs keyed by
    run folder)."""
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
            kept = shipped.get(run_key(folder))
            if kept is None or not same_config(kept["summary"].get("config") or {}, cfg):
                raise UserError(f"no `nclb lm-eval` output in {folder}; drop run=false")
            return {**kept, "cfg": cfg, "folder": folder}
    samples = [json.loads(line) for line in (folder / SAMPLES).read_text().splitlines() if line]
    return {
        "cfg": cfg,
        "summary": json.loads((folder / SUMMARY).read_text()),
        "records": {r["id"]: r for r in read_records(folder / RECORDS)},
        "samples": samples,
        "folder": folder,
    }


def record_key(sample: dict[str, Any]) -> str:
    """The id of nclb's record of the output an lm-eval sample scored."""
    return f"{sample['task']}/{sample['doc_id']}/0"


def lm_eval_correct(value: Any) -> bool:
    """lm-eval's verdict from a metric's value."""
    return float(value) >= 0.5


def compact_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """What the table reads of one evaluation, to ship beside it: the summary, nclb's verdict
    on each output it scored and lm-eval's under each rule; and for an output the two disagree
    on, what the disagreement shows (the gold answer, both readings, the output's end)."""
    records, samples, disputed = outputs["records"], [], set()
    for sample in outputs["samples"]:
        record = records.get(record_key(sample))
        differs = (
            record is not None
            and "correct" in record
            and any(
                lm_eval_correct(v) != bool(record["correct"]) for v in sample["metrics"].values()
            )
        )
        if differs:
            disputed.add(record_key(sample))
        read = differs and sample["filter"] not in (None, "none")
        samples.append(
            {
                **{k: sample[k] for k in ("task", "doc_id", "filter", "metrics")},
                "filtered_resps": sample["filtered_resps"] if read else None,
            }
        )
    kept = {}
    for key, r in records.items():
        if "correct" not in r:
            continue
        kept[key] = {"correct": r["correct"]}
        if key in disputed:
            kept[key].update({k: r.get(k) for k in ("example_id", "gold", "prediction")})
            kept[key]["output"] = short(r.get("output"), OUTPUT_END)
    return {"summary": outputs["summary"], "records": kept, "samples": samples}


def short(text: Any, width: int = 70) -> str:
    """A one-line excerpt (the end of long text, where the answer is)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else "..." + flat[-(width - 3) :]


def compare(label: str, outputs: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(one row per lm-eval rule, one dict per disagreement) for one evaluation."""
    cfg = outputs["cfg"]
    by_rule: dict[tuple[str, str, str], list[tuple[dict, dict, float]]] = {}
    for sample in outputs["samples"]:
        record = outputs["records"].get(record_key(sample))
        if record is None or "correct" not in record:
            continue  # not an nclb example: nclb has no verdict to compare
        for metric, value in sample["metrics"].items():
            key = (sample["task"], sample["filter"], metric)
            by_rule.setdefault(key, []).append((record, sample, float(value)))
    rows, disagreements = [], []
    for (task, filter_, metric), items in by_rule.items():
        rule = metric if filter_ in (None, "none") else f"{metric} ({filter_})"
        nclb = [bool(r["correct"]) for r, _, _ in items]
        theirs = [lm_eval_correct(v) for _, _, v in items]
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
                        "output_end": short(record.get("output"), OUTPUT_END),
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

    if execute:
        require_lm_eval()
    stem = output_stem(grid.name, grid.model_kind)
    shipped = {} if execute else read_log(results, stem).get("runs", {})
    rows, disagreements, lines, kept = [], [], [], {}
    for group in grid.groups:
        label = group.get("label", "evaluation")
        outputs = group_outputs(group, extra, execute, log, shipped)
        kept[run_key(outputs["folder"])] = compact_outputs(outputs)
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
    return [*paths, write_log(results, stem, {"runs": dict(sorted(kept.items()))})]
