"""`nclb trace-score`: score partial reasoning traces by the answer's likelihood (Figure 4).

Each problem is decoded greedily, left to right, one token per step. The trace is the reasoning
written before the first eos (L tokens). At each fraction f of it, the first round(f * L) trace
tokens the sampler committed are kept, the rest of the reasoning is masked again, the gold answer
a* is pre-filled, and the reward is log p(a* | c, r_so_far) (`answer_score`: marginal = the answer
block masked, one pass; chain = left to right). The baseline is the mean confidence (probability
of the committed token, at commit time) of the partial trace. Per fraction, the Pearson and
Spearman correlations of each score with the final correctness of the full generation are
written to `correlations.csv`; every (problem, fraction) score to `scores.csv`.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nclb.config.settings import resolve
from nclb.errors import UserError
from nclb.experiments.likelihood import ANSWER_SCORES, answer_logprobs
from nclb.models.build import build_model
from nclb.runs.revision import git_revision
from nclb.runs.runlog import write_json_atomic
from nclb.runs.runner import decode
from nclb.sampler import Generation, build_decoder
from nclb.schema import Integer, OneOf, from_fields, setting
from nclb.tasks.build import build_task, model_context
from nclb.tasks.outputs import read_output
from nclb.tasks.template import fill_answer, gold_answer_text
from nclb.threads import use_threads
from nclb.types import Canvas


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..n with ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: list[float], y: list[float]) -> float:
    """Pearson correlation (nan when either side is constant or fewer than 2 pairs)."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 2:
        return float("nan")
    mx = sum(a for a, _ in pairs) / len(pairs)
    my = sum(b for _, b in pairs) / len(pairs)
    sxy = sum((a - mx) * (b - my) for a, b in pairs)
    sxx = sum((a - mx) ** 2 for a, _ in pairs)
    syy = sum((b - my) ** 2 for _, b in pairs)
    if sxx <= 0 or syy <= 0:
        return float("nan")
    return sxy / math.sqrt(sxx * syy)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (Pearson on average ranks), over the finite pairs."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 2:
        return float("nan")
    return pearson(ranks([a for a, _ in pairs]), ranks([b for _, b in pairs]))


def undefined_reason(x: list[float], correct: list[float], name: str) -> str | None:
    """Why the correlation of `x` (called `name`) with correctness is undefined, in words
    (e.g. 'every answer is correct: correctness has no variance'); None when it is defined."""
    pairs = [
        (a, b) for a, b in zip(x, correct, strict=True) if math.isfinite(a) and math.isfinite(b)
    ]
    if len(pairs) < 2:
        return f"fewer than 2 generations have a finite {name}"
    outcomes = {b for _, b in pairs}
    if outcomes == {1.0}:
        return "every answer is correct: correctness has no variance"
    if len(outcomes) == 1:
        return "every answer is wrong: correctness has no variance"
    if len({a for a, _ in pairs}) == 1:
        return f"the {name} is the same for every generation: it has no variance"
    return None


def trace_positions(
    canvas: Canvas, gen: Generation, mask_id: int, eos_ids: tuple[int, ...]
) -> list[int]:
    """The trace's positions in commit order: masked reasoning positions (before the answer
    block) that lie before the first eos of the generated reasoning."""
    end = canvas.answer[0] if canvas.answer else len(canvas.region)
    reasoning = [i for i in range(end) if canvas.region[i] == mask_id]
    stop = next((i for i in reasoning if gen.region[i] in eos_ids), end)
    trace = {i for i in reasoning if i < stop}
    return [p for step in gen.steps for p in sorted(step.positions) if p in trace]


def partial_states(
    canvas: Canvas, gen: Generation, gold_region: list[int], order: list[int], fraction: float
) -> tuple[list[int], float]:
    """The region with the first round(f * L) trace tokens kept, every other sampled reasoning
    position masked and the gold answer filled; and the mean confidence of the kept tokens."""
    keep = order[: int(math.floor(fraction * len(order) + 0.5))]
    state = list(canvas.region)
    start, end = canvas.answer
    state[start:end] = gold_region[start:end]
    for p in keep:
        state[p] = gen.region[p]
    logprob = {p: lp for s in gen.steps for p, lp in zip(s.positions, s.logprobs, strict=True)}
    conf = [math.exp(logprob[p]) for p in keep]
    return state, (sum(conf) / len(conf) if conf else float("nan"))


@dataclass
class TraceScoreOptions:
    """The bounded keys of configs/trace_score.yaml that `nclb run` does not have."""

    n: int | None = setting(300, Integer(min=1, nullable=True, meaning="null = all examples"))
    answer_score: str = setting("marginal", OneOf(options=ANSWER_SCORES))


def validate_config(cfg: dict[str, Any]):
    """Run settings for the greedy left-to-right decoding, or a one-line UserError."""
    fractions = cfg.get("fractions") or []
    if not fractions or not all(isinstance(f, int | float) and 0 <= f <= 1 for f in fractions):
        raise UserError(f"fractions={fractions!r} must be a non-empty list of numbers in [0, 1]")
    from_fields(TraceScoreOptions, cfg)
    run_cfg = {
        **cfg,
        "decoder": {"name": "ktoken", "k": 1, "order": "left_to_right"},
        "temperature": 0.0,
        "gamma": None,
        "limit": cfg.get("n"),
        "resume": False,
    }
    return resolve(run_cfg)


def trace_score(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `nclb trace-score` per `cfg` (configs/trace_score.yaml); returns the correlation rows."""
    s = validate_config(cfg)
    use_threads(cfg.get("threads"))
    task = build_task(s.task)
    examples = task.examples(s.limit)
    model = build_model(s.model, model_context(task, examples, s.gen_length))
    decoder = build_decoder("ktoken", k=1, order="left_to_right")
    items = [(ex, task.canvas(ex, model, s.gen_length)) for ex in examples]
    if any(c.answer is None for _, c in items):
        raise UserError(f"task={task.name} has no answer block; trace scoring needs one")
    start = time.perf_counter()
    with tqdm(total=len(items), desc=f"trace-score {task.name}", unit="ex") as bar:
        canvases = [c for _, c in items]
        done = decode(
            model, canvases, decoder, s.sampler, s.batch_size, on_done=lambda i, g: bar.update(1)
        )
    gens: dict[str, Generation] = {ex.id: g for (ex, _), g in zip(items, done, strict=True)}
    fractions = [float(f) for f in cfg["fractions"]]
    rows, prompts, states, spans = [], [], [], []
    for ex, canvas in items:
        g = gens[ex.id]
        correct = bool(read_output(task, model, ex, canvas, g.region).score.correct)
        gold = fill_answer(canvas, model, gold_answer_text(task, ex))
        order = trace_positions(canvas, g, model.mask_id, model.eos_ids)
        for f in fractions:
            state, conf = partial_states(canvas, g, gold, order, f)
            rows.append(
                {
                    "id": ex.id,
                    "fraction": f,
                    "trace_tokens": len(order),
                    "kept": int(math.floor(f * len(order) + 0.5)),
                    "confidence": conf,
                    "correct": int(correct),
                }
            )
            prompts.append(canvas.prompt)
            states.append(state)
            spans.append(canvas.answer)
    scores = answer_logprobs(
        model, prompts, states, spans, cfg.get("answer_score", "marginal"), s.batch_size
    )
    for row, lp in zip(rows, scores, strict=True):
        row["reward"] = float(sum(lp))
    table = correlations(rows, fractions)
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scores.csv", rows)
    write_csv(out / "correlations.csv", table)
    accuracy = sum(r["correct"] for r in rows if r["fraction"] == fractions[0]) / len(items)
    write_json_atomic(
        out / "summary.json",
        {
            "n": len(items),
            "accuracy": accuracy,
            "correlations": table,
            "seconds": time.perf_counter() - start,
            "git": git_revision(),
            "config": cfg,
        },
    )
    print(f"{s.model['name']} | {task.name} | n={len(items)} accuracy={accuracy:.3f} -> {out}")
    for r in table:
        print(
            f"  f={r['fraction']:.2f}  reward pearson={r['pearson_reward']:+.3f} "
            f"spearman={r['spearman_reward']:+.3f}  confidence pearson="
            f"{r['pearson_confidence']:+.3f} spearman={r['spearman_confidence']:+.3f}"
        )
    for line in undefined_lines(rows, fractions):
        print(line)
    return table


def undefined_lines(rows: list[dict[str, Any]], fractions: list[float]) -> list[str]:
    """One line per reason a correlation of the table is undefined (nan), naming the
    fractions it holds at."""
    reasons: dict[str, list[str]] = {}
    for f in fractions:
        sub = [r for r in rows if r["fraction"] == f]
        y = [float(r["correct"]) for r in sub]
        for key, name in (("reward", "reward"), ("confidence", "mean confidence")):
            why = undefined_reason([r[key] for r in sub], y, name)
            at = reasons.setdefault(why, []) if why else []
            if why and f"{f:.2f}" not in at:
                at.append(f"{f:.2f}")
    return [
        f"  correlations undefined (nan) at f={', '.join(fs)}: {why}" for why, fs in reasons.items()
    ]


def correlations(rows: list[dict[str, Any]], fractions: list[float]) -> list[dict[str, Any]]:
    """Per fraction: Pearson and Spearman of the reward and of the confidence baseline with
    final correctness, and the mean reward of correct and wrong generations."""
    table = []
    for f in fractions:
        sub = [r for r in rows if r["fraction"] == f]
        y = [float(r["correct"]) for r in sub]
        reward = [r["reward"] for r in sub]
        conf = [r["confidence"] for r in sub]
        right = [r["reward"] for r in sub if r["correct"]]
        wrong = [r["reward"] for r in sub if not r["correct"]]
        table.append(
            {
                "fraction": f,
                "n": len(sub),
                "pearson_reward": pearson(reward, y),
                "spearman_reward": spearman(reward, y),
                "pearson_confidence": pearson(conf, y),
                "spearman_confidence": spearman(conf, y),
                "mean_reward_correct": sum(right) / len(right) if right else float("nan"),
                "mean_reward_wrong": sum(wrong) / len(wrong) if wrong else float("nan"),
            }
        )
    return table


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows of dicts as a CSV with a header (floats as written by Python)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
