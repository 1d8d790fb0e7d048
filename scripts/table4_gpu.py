"""Table 4 fine-tunes (and Figure 4 trace scores) on one GPU, with a longer budget than the CPU
run of scripts/table4.py. Same commands as there, through the Python entry points:

    python scripts/table4_gpu.py OUT_DIR [--steps 3000] [--batch 64] [--lr 5e-4]

Needs checkpoints/tiny-arith-t2 and outputs/table4/posterior/traces.jsonl (scripts/table4.py makes
the latter). Models are built as in scripts/gpu_check_posterior.py. Writes OUT_DIR/table4_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from gpu_check_posterior import DEVICE, config, cuda_model  # noqa: E402
from nclb import finetune as finetune_mod  # noqa: E402
from nclb import trace_score as trace_mod  # noqa: E402

HARD = ["task.min_steps=3", "task.max_steps=3"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", default="5e-4")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--eval-n", type=int, default=500)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    finetune_mod.build_model = cuda_model
    trace_mod.build_model = cuda_model
    base = str(ROOT / "checkpoints/tiny-arith-t2")
    traces = str(ROOT / "outputs/table4/posterior/traces.jsonl")
    ft = [
        f"init={base}",
        f"device={DEVICE}",
        *HARD,
        f"optim.steps={args.steps}",
        f"optim.batch_size={args.batch}",
        f"optim.lr={args.lr}",
        f"eval.n={args.eval_n}",
        "eval.batch_size=500",
        "log_every=500",
        "data.gold_seed=7",
    ]
    variants = {
        "gold": ["eval.before=true", f"data.gold_n={args.n}"],
        "posterior": [f"data.traces=[{traces}]"],
        "both": [f"data.gold_n={args.n}", f"data.traces=[{traces}]"],
    }
    results: dict = {"settings": vars(args)}
    for name, extra in variants.items():
        s = finetune_mod.finetune(config("finetune", *ft, *extra, f"out_dir=/tmp/t4/ft-{name}"))
        if "eval_before" in s:
            results["no fine-tuning"] = s["eval_before"]
        results[f"FT on {name} traces"] = s["eval"]
        print(json.dumps({name: s["eval"]}), flush=True)
    scores = {}
    for label, path, task in (
        ("ft-gold, 3-step test", "/tmp/t4/ft-gold/hf", HARD),
        ("base, 2-3 step test", base, []),
    ):
        cfg = config(
            "trace_score", f"model.path={path}", *task, f"n={args.eval_n}", "out_dir=/tmp/t4/ts"
        )
        table = trace_mod.trace_score(cfg)
        summary = json.loads(Path("/tmp/t4/ts/summary.json").read_text())
        scores[label] = {"accuracy": summary["accuracy"], "n": summary["n"], "rows": table}
        (out / f"trace_{len(scores)}.csv").write_text(
            Path("/tmp/t4/ts/correlations.csv").read_text()
        )
    results["trace_score"] = scores
    (out / "table4_gpu.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
