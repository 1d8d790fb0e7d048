"""GPU check of issue 7's code paths on the tiny arith model: posterior traces, LoRA
fine-tuning, KL logging and partial-trace scoring with the model on CUDA.

    python scripts/gpu_check_posterior.py OUT_DIR

The model is built directly (package classes) so that the check also runs where the
installed transformers differs from the pinned one; every nclb entry point gets it through
`build_model`. Prints one JSON line per check and fails loudly on a wrong result.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("CHECK_DEVICE", "cuda")  # CHECK_DEVICE=cpu: a local dry run
sys.path.insert(0, str(ROOT / "src"))

from nclb import finetune as finetune_mod  # noqa: E402
from nclb import posterior as posterior_mod  # noqa: E402
from nclb import runner as runner_mod  # noqa: E402
from nclb import trace_score as trace_mod  # noqa: E402
from nclb.models.hf import FAMILIES, HFMaskedLM  # noqa: E402
from nclb.tiny.modeling_nclb_tiny import NclbTinyConfig, NclbTinyForMaskedLM  # noqa: E402
from nclb.tiny.tokenizer import build_tokenizer  # noqa: E402


def cuda_model(cfg, task, examples, gen_length):
    """The tiny checkpoint named by the model config, on the GPU."""
    path = Path(cfg.get("path") or ROOT / "checkpoints" / f"tiny-{task.name}")
    # Built, then loaded: transformers 5's from_pretrained leaves the rotary buffer (a
    # non-persistent buffer) uninitialised, which breaks the model on newer installs.
    model = NclbTinyForMaskedLM(NclbTinyConfig.from_pretrained(path))
    model.load_state_dict(load_file(path / "model.safetensors"))
    model = model.to(DEVICE)
    return HFMaskedLM(model, build_tokenizer(), FAMILIES["tiny"], chat_template=False)


def config(name: str, *overrides: str) -> dict:
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        return OmegaConf.to_container(compose(name, overrides=list(overrides)), resolve=True)


def main() -> None:
    out = Path(sys.argv[1])
    assert DEVICE == "cpu" or torch.cuda.is_available()
    for mod in (finetune_mod, posterior_mod, runner_mod, trace_mod):
        mod.build_model = cuda_model
    post = posterior_mod.posterior(config("posterior", "n=64", f"out_dir={out}/posterior"))
    assert post["posterior"]["trace_ok"] > 0.95, post
    print(json.dumps({"posterior": post["posterior"], "prior": post["prior"]}))
    ft = finetune_mod.finetune(
        config(
            "finetune",
            f"device={DEVICE}",
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
        s = runner_mod.run(
            config(
                "config",
                *spec,
                "temperature=1.0",
                "metrics.kl=true",
                "limit=32",
                f"device={DEVICE}",
                f"out_dir={out}/kl",
            )
        )
        print(json.dumps({"kl": spec, **{k: s["kl"][k] for k in ("estimate", "pair_kl_sum")}}))
        if spec == ["k=1"]:
            assert s["kl"]["estimate"] == 0.0
    table = trace_mod.trace_score(config("trace_score", "n=32", f"out_dir={out}/trace"))
    print(json.dumps({"trace_score_rows": len(table)}))


if __name__ == "__main__":
    main()
