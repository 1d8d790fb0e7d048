"""GPU check of issue 7's code paths on the tiny arith model: posterior traces, LoRA
fine-tuning, KL logging and partial-trace scoring with the model on CUDA.

    python scripts/gpu_check_posterior.py OUT_DIR

Every command gets `device=` ($CHECK_DEVICE, default cuda). Prints one JSON line per check
and fails loudly on a wrong result.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("CHECK_DEVICE", "cuda")  # CHECK_DEVICE=cpu: a local dry run
sys.path.insert(0, str(ROOT / "src"))

from nclb.config.compose import compose  # noqa: E402
from nclb.experiments.finetune import finetune  # noqa: E402
from nclb.experiments.posterior import posterior  # noqa: E402
from nclb.experiments.trace_score import trace_score  # noqa: E402
from nclb.runs.runner import run  # noqa: E402


def config(name: str, *overrides: str) -> dict:
    """The composed config `name` with the overrides, on DEVICE."""
    return compose(name, [*overrides, f"device={DEVICE}"])


def main() -> None:
    out = Path(sys.argv[1])
    assert DEVICE == "cpu" or torch.cuda.is_available()
    post = posterior(config("posterior", "n=64", f"out_dir={out}/posterior"))
    assert post["posterior"]["trace_ok"] > 0.95, post
    print(json.dumps({"posterior": post["posterior"], "prior": post["prior"]}))
    ft = finetune(
        config(
            "finetune",
            f"data.traces=[{out}/posterior/traces.jsonl]",
            "data.gold_n=64",
            "optim.steps=20",
            "lora.enabled=true",
            "eval.n=64",
            "eval.before=true",
            f"out_dir={out}/ft",
        )
    )
    assert ft["eval"]["accuracy"] > 0.9, ft
    print(json.dumps({"finetune_lora": {k: ft[k] for k in ("eval_before", "eval", "data")}}))
    for spec in (["k=1"], ["k=2"]):
        s = run(
            config(
                "config",
                *spec,
                "temperature=1.0",
                "metrics.kl=true",
                "limit=32",
                f"out_dir={out}/kl",
            )
        )
        print(json.dumps({"kl": spec, **{k: s["kl"][k] for k in ("estimate", "pair_kl_sum")}}))
        if spec == ["k=1"]:
            assert s["kl"]["estimate"] == 0.0
    table = trace_score(config("trace_score", "n=32", f"out_dir={out}/trace"))
    print(json.dumps({"trace_score_rows": len(table)}))


if __name__ == "__main__":
    main()
