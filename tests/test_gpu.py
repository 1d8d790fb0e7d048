"""The experiment commands' code paths with the tiny model on a GPU: posterior traces, LoRA fine-tuning, KL
logging and partial-trace scores (`pytest -m gpu`; skipped without CUDA).

NCLB_GPU_TEST_DEVICE=cpu runs the same checks on the CPU (a dry run of this file)."""

from __future__ import annotations

import os

import pytest
import torch

from nclb.config.compose import compose
from nclb.experiments.finetune import finetune
from nclb.experiments.posterior import posterior
from nclb.experiments.trace_score import trace_score
from nclb.runs.runner import run

DEVICE = os.environ.get("NCLB_GPU_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA GPU"
    ),
]


def config(name: str, *overrides: str) -> dict:
    """The composed config `name` with the overrides, on DEVICE."""
    return compose(name, [*overrides, f"device={DEVICE}"])


def test_posterior_traces_then_a_lora_fine_tune(tmp_path):
    pytest.importorskip("peft", reason="LoRA needs pip install 'nclb[lora]'")
    post = posterior(config("posterior", "task=arith", "n=64", f"out_dir={tmp_path}/posterior"))
    assert post["posterior"]["trace_ok"] > 0.95, post
    ft = finetune(
        config(
            "finetune",
            f"data.traces=[{tmp_path}/posterior/traces.jsonl]",
            "data.gold_n=64",
            "optim.steps=20",
            "lora.enabled=true",
            "eval.n=64",
            "eval.before=true",
            f"out_dir={tmp_path}/ft",
        )
    )
    assert ft["eval"]["accuracy"] > 0.9, ft


@pytest.mark.parametrize("k", [1, 2])
def test_kl_is_logged_and_zero_for_one_token_steps(tmp_path, k):
    s = run(
        config(
            "config",
            "task=arith",
            f"k={k}",
            "temperature=1.0",
            "metrics.kl=true",
            "limit=32",
            f"out_dir={tmp_path}/kl",
        )
    )
    assert (s["kl"]["estimate"] == 0.0) == (k == 1), s["kl"]


def test_trace_scores(tmp_path):
    table = trace_score(config("trace_score", "task=arith", "n=32", f"out_dir={tmp_path}/trace"))
    assert len(table) > 0
