"""The paper's Table 4 in miniature, on the tiny arith model (docs/posterior.md).

Base model: saw gold scratchpads for 2-step chains only and only answers for 3-step chains
(`checkpoints/tiny-arith-t2`; `nclb train ... +task.trace_max_steps=2`, checkpoints/README.md).
Then, on N training problems with 3 steps:
  posterior traces   nclb posterior (answer pre-filled, the base model infills the scratchpad)
  fine-tuning        no FT / gold traces / posterior traces / both, same steps and settings
and every variant is scored on the held-out 3-step test set (greedy k=1, entropy order).
Also the Table 3 analogue on the 3-step test problems: the fraction of correct posterior traces
vs traces from ordinary decoding. Writes outputs/table4/results.{json,md}.

    .venv/bin/python scripts/table4.py [--n 2000] [--steps 500] [--eval-n 500]

On a GPU, the longer fine-tunes and the Figure 4 trace scores of the fine-tuned and the base model:

    .venv/bin/python scripts/table4.py --device cuda --steps 1500 --batch 64 --trace-score --out OUT
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every command names the arith task: `nclb posterior` and `nclb trace-score` default to chain.
ARITH = ["task=arith"]
HARD = [*ARITH, "task.min_steps=3", "task.max_steps=3"]


def nclb(*args: str) -> None:
    """Run one nclb command, echoing it."""
    exe = shutil.which("nclb") or str(Path(sys.executable).parent / "nclb")
    print("$ nclb " + " ".join(args), flush=True)
    subprocess.run([exe, *args], check=True, cwd=ROOT)


def trace_scores(finetuned: str, base: str, device: list[str], args) -> dict:
    """`nclb trace-score` of the gold fine-tune on 3-step test problems and of the base model on
    its own test set: each run's accuracy and n (correlations.csv is in its out_dir)."""
    scores = {}
    for label, path, task in (
        ("ft-gold, 3-step test", finetuned, HARD),
        ("base, 2-3 step test", base, ARITH),
    ):
        out = Path(args.out) / f"trace-{len(scores) + 1}"
        nclb(
            "trace-score",
            f"model.path={path}",
            "threads=1",
            *device,
            *task,
            f"n={args.eval_n}",
            f"out_dir={out}",
        )
        summary = json.loads((ROOT / out / "summary.json").read_text())
        scores[label] = {"accuracy": summary["accuracy"], "n": summary["n"], "out_dir": str(out)}
    return scores


def main() -> None:
    """Posterior traces, three fine-tunes, one results table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="checkpoints/tiny-arith-t2")
    ap.add_argument("--out", default="outputs/table4")
    ap.add_argument("--n", type=int, default=2000, help="training problems (3-step)")
    ap.add_argument("--steps", type=int, default=500, help="fine-tuning steps per variant")
    ap.add_argument("--lr", default="5e-4")
    ap.add_argument("--eval-n", type=int, default=500)
    ap.add_argument("--table3-n", type=int, default=500)
    ap.add_argument("--device", help="device of every command (default: each config's, auto)")
    ap.add_argument("--batch", type=int, help="fine-tuning batch size (default: the config's)")
    ap.add_argument("--trace-score", action="store_true", help="also nclb trace-score (Figure 4)")
    args = ap.parse_args()
    base, out = args.base, Path(args.out)
    if not (ROOT / base / "config.json").is_file():
        raise SystemExit(f"no base checkpoint at {base}; see the docstring")
    device = [f"device={args.device}"] if args.device else []
    common = [f"model.path={base}", "threads=1", *device, *HARD]
    nclb(
        "posterior",
        *common,
        f"n={args.table3_n}",
        "prior=true",
        f"out_dir={out}/table3",
    )
    nclb(
        "posterior",
        *common,
        "source=train_stream",
        f"n={args.n}",
        "train_seed=7",
        "prior=false",
        f"out_dir={out}/posterior",
    )
    traces = f"{out}/posterior/traces.jsonl"
    ft = [
        f"init={base}",
        "threads=1",
        *device,
        *HARD,
        *([f"optim.batch_size={args.batch}"] if args.batch else []),
        f"optim.steps={args.steps}",
        f"optim.lr={args.lr}",
        f"eval.n={args.eval_n}",
        "data.gold_seed=7",
    ]
    variants = {
        "gold": ["eval.before=true", f"data.gold_n={args.n}"],
        "posterior": [f"data.traces=[{traces}]"],
        "both": [f"data.gold_n={args.n}", f"data.traces=[{traces}]"],
    }
    for name, extra in variants.items():
        nclb("finetune", *ft, *extra, f"out_dir={out}/ft-{name}")
    summaries = {n: json.loads((ROOT / out / f"ft-{n}/summary.json").read_text()) for n in variants}
    table3 = json.loads((ROOT / out / "table3/summary.json").read_text())
    post = json.loads((ROOT / out / "posterior/summary.json").read_text())
    rows = {"no fine-tuning": summaries["gold"]["eval_before"]}
    rows |= {f"FT on {n} traces": s["eval"] for n, s in summaries.items()}
    results = {
        "table4": rows,
        "train_posterior_trace_ok": post["posterior"]["trace_ok"],
        "table3": {k: table3[k] for k in ("posterior", "prior", "posterior_where_prior_wrong")},
        "settings": vars(args),
    }
    if args.trace_score:
        results["trace_score"] = trace_scores(summaries["gold"]["checkpoint"], base, device, args)
    (ROOT / out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"Held-out 3-step arith ({args.eval_n} problems), greedy k=1; fine-tuning on {args.n} "
        f"3-step training problems, {args.steps} steps each.",
        "",
        "| model | accuracy | correct traces |",
        "|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r.get('trace_ok', float('nan')):.3f} |")
    lines += [
        "",
        f"Posterior traces used for fine-tuning: {post['posterior']['trace_ok']:.3f} correct.",
        f"Table 3 analogue (base model, {args.table3_n} 3-step test problems, temperature 1): "
        f"posterior traces correct {table3['posterior']['trace_ok']:.3f}, ordinary decoding "
        f"traces correct {table3['prior']['trace_ok']:.3f} (accuracy "
        f"{table3['prior']['accuracy']:.3f}); posterior traces on the problems ordinary "
        f"decoding got wrong: {table3['posterior_where_prior_wrong']['trace_ok']}",
    ]
    (ROOT / out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
