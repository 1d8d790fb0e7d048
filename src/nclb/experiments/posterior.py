"""`nclb posterior`: posterior reasoning traces, samples from p(r | c, a) (the paper's Table 3).

For each problem the gold answer is pre-filled in the answer block of the reasoning-as-infilling
canvas and the sampler fills the reasoning. Every trace is written to `traces.jsonl` with its
answer log-probability log p(a | c, r) under the model (to filter traces) and, where the task can
check a trace (arith: `check_trace` recomputes every step), whether it is correct. With
`prior=true` the same problems are also decoded without the answer (ordinary decoding), so the
summary compares the fraction of correct traces with and without conditioning on the answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from nclb.config.settings import resolve
from nclb.errors import UserError
from nclb.experiments.likelihood import ANSWER_SCORES, answer_logprobs
from nclb.models.base import MaskedLM
from nclb.models.build import build_model
from nclb.runs.revision import git_revision
from nclb.runs.runlog import read_records, write_json_atomic
from nclb.runs.runner import decode
from nclb.schema import Flag, Integer, OneOf, from_fields, setting
from nclb.tasks.base import ChecksTrace, Task
from nclb.tasks.build import SOURCES, build_task, model_context, problems
from nclb.tasks.outputs import read_output
from nclb.tasks.template import fill_answer, gold_answer_text
from nclb.threads import use_threads
from nclb.types import Canvas, Example

TRACES = "traces.jsonl"


def posterior_canvas(task: Task, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
    """The task's canvas with the gold answer pre-filled: sampling it draws r ~ p(r | c, a)."""
    canvas = task.canvas(example, model, gen_length)
    region = fill_answer(canvas, model, gold_answer_text(task, example))
    return Canvas(prompt=canvas.prompt, region=region, answer=canvas.answer)


def trace_check(task: Task, text: str, example: Example | None = None) -> bool | None:
    """Whether the trace is correct (None where the task has no checker). With `example`:
    its steps are exactly the problem's operations and each recomputes; without: every step
    that was written recomputes and starts from the previous result."""
    if not isinstance(task, ChecksTrace):
        return None
    return bool(task.check_trace(text, example.prompt if example is not None else None))


def wrong_ids(path: str) -> set[str]:
    """Ids of the examples a `nclb run` records.jsonl scored wrong."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"only_wrong={path} is not a file; point it at a run's records.jsonl")
    return {r["id"] for r in read_records(file) if not r.get("correct")}


def _rate(values: list[Any]) -> float | None:
    kept = [bool(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_traces(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Fractions of correct traces per mode, the prior's accuracy, and the posterior traces'
    correctness on the problems the prior decoding got wrong (the paper's Table 3 setting)."""
    out: dict[str, Any] = {}
    for mode in ("posterior", "prior"):
        rows = [r for r in records if r["mode"] == mode]
        if not rows:
            continue
        out[mode] = {
            "n": len(rows),
            "trace_ok": _rate([r["trace_ok"] for r in rows]),
            "steps_ok": _rate([r.get("steps_ok") for r in rows]),
            "accuracy": _rate([r["correct"] for r in rows]),
            "mean_answer_logprob": _mean([r["answer_logprob"] for r in rows]),
        }
    prior_wrong = {r["id"] for r in records if r["mode"] == "prior" and not r["correct"]}
    if "posterior" in out and "prior" in out:
        rows = [r for r in records if r["mode"] == "posterior" and r["id"] in prior_wrong]
        out["posterior_where_prior_wrong"] = {
            "n": len(rows),
            "trace_ok": _rate([r["trace_ok"] for r in rows]),
            "steps_ok": _rate([r.get("steps_ok") for r in rows]),
        }
    return out


def trace_records(
    task: Task,
    model: MaskedLM,
    items: list[tuple[Example, Canvas, str, int]],
    settings,
    answer_score: str,
    generator: torch.Generator,
) -> list[dict[str, Any]]:
    """Decode every (example, canvas, mode, sample) item; one record per trace."""
    with tqdm(total=len(items), desc=f"posterior {task.name}", unit="trace") as bar:
        gens = decode(
            model,
            [c for _, c, _, _ in items],
            settings.decoder,
            settings.sampler,
            settings.batch_size,
            generator=generator,
            on_done=lambda i, g: bar.update(1),
        )
    gold_regions, spans = [], []
    for (ex, canvas, _, _), g in zip(items, gens, strict=True):
        gold_regions.append(fill_answer(canvas, model, gold_answer_text(task, ex)))
        spans.append(canvas.answer)
        start, end = canvas.answer
        gold_regions[-1][:start] = g.region[:start]
    scores = answer_logprobs(
        model,
        [c.prompt for _, c, _, _ in items],
        gold_regions,
        spans,
        answer_score,
        settings.batch_size,
    )
    records = []
    for (ex, canvas, mode, sample), g, lp in zip(items, gens, scores, strict=True):
        out = read_output(task, model, ex, canvas, g.region)
        text, answer, score = out.text, out.answer, out.score
        records.append(
            {
                "id": ex.id,
                "prompt": ex.prompt,
                "gold": ex.gold if isinstance(ex.gold, str | int | float) else str(ex.gold),
                "mode": mode,
                "sample": sample,
                "output": text,
                "answer_text": answer,
                "correct": bool(score.correct),
                "trace_ok": trace_check(task, text, ex),
                "steps_ok": trace_check(task, text),
                "answer_logprob": float(sum(lp)),
                "answer_token_logprobs": lp,
                "nfe": g.nfe,
                "region_ids": g.region,
            }
        )
    return records


@dataclass
class PosteriorOptions:
    """The keys of configs/posterior.yaml that `nclb run` does not have."""

    source: str = setting("examples", OneOf(options=SOURCES))
    n: int | None = setting(200, Integer(min=1, nullable=True, meaning="null = all examples"))
    train_seed: int = setting(7, Integer(min=0))
    samples: int = setting(1, Integer(min=1))
    prior: bool = setting(True, Flag())
    answer_score: str = setting("marginal", OneOf(options=ANSWER_SCORES))


def validate_config(cfg: dict[str, Any]):
    """The run settings of a posterior config, or a one-line UserError."""
    from_fields(PosteriorOptions, cfg)
    return resolve({**cfg, "gamma": None, "limit": None, "resume": False})


def posterior(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run `nclb posterior` per `cfg` (configs/posterior.yaml); returns the summary."""
    settings = validate_config(cfg)
    task = build_task(settings.task)
    examples = problems(task, cfg.get("source", "examples"), cfg.get("n"), int(cfg["train_seed"]))
    if cfg.get("only_wrong"):
        keep = wrong_ids(cfg["only_wrong"])
        examples = [ex for ex in examples if ex.id in keep]
    model = build_model(settings.model, model_context(task, examples, settings.gen_length))
    use_threads(cfg.get("threads"))
    items = []
    for ex in examples:
        for sample in range(int(cfg.get("samples", 1))):
            items.append(
                (ex, posterior_canvas(task, ex, model, settings.gen_length), "posterior", sample)
            )
            if cfg.get("prior", True):
                items.append((ex, task.canvas(ex, model, settings.gen_length), "prior", sample))
    generator = torch.Generator().manual_seed(settings.seed)
    start = time.perf_counter()
    records = trace_records(
        task, model, items, settings, cfg.get("answer_score", "marginal"), generator
    )
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    with (out / TRACES).open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    summary = {
        "problems": len(examples),
        **summarize_traces(records),
        "seconds": time.perf_counter() - start,
        "traces": str(out / TRACES),
        "git": git_revision(),
        "config": cfg,
    }
    write_json_atomic(out / "summary.json", summary)
    post = summary.get("posterior", {})
    prior = summary.get("prior", {})
    print(
        f"{settings.model['name']} | {task.name} | {len(examples)} problems | posterior traces "
        f"correct {post.get('trace_ok')} | prior accuracy {prior.get('accuracy')} trace correct "
        f"{prior.get('trace_ok')} -> {out}"
    )
    return summary
