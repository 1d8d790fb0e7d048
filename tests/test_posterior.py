"""Posterior traces: answer log-likelihoods, exact posterior sampling, the command end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nclb.cli import main
from nclb.config import config_dir
from nclb.experiments.likelihood import answer_logprobs
from nclb.experiments.posterior import posterior, summarize_traces
from nclb.models.oracle import OracleModel, random_joint
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.tasks.template import fill_answer
from nclb.types import Canvas

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def oracle() -> OracleModel:
    return OracleModel(random_joint(content=3, length=3, seed=4))


def test_answer_logprob_marginal_and_chain(oracle):
    """Answer block = positions 1..2 of x; the chain score is log p(x1, x2 | x0) exactly, the
    marginal score log p(x1 | x0) + log p(x2 | x0)."""
    x = [1, 2, 0]
    j = oracle.joint
    given = j[x[0]] / j[x[0]].sum()
    chain = math.log(given[x[1], x[2]])
    marginal = math.log(given.sum(1)[x[1]]) + math.log(given.sum(0)[x[2]])
    args = (oracle, [[]], [x], [(1, 3)])
    assert sum(answer_logprobs(*args, mode="chain")[0]) == pytest.approx(chain, abs=1e-5)
    assert sum(answer_logprobs(*args, mode="marginal")[0]) == pytest.approx(marginal, abs=1e-5)


def test_prefilled_answer_samples_the_exact_posterior(oracle):
    """Pre-fill the last position with a and sample the rest: r ~ p(r | a)."""
    canvas = Canvas(prompt=[], region=[oracle.mask_id] * 3, answer=(2, 3))
    region = fill_answer(canvas, oracle, "b")
    assert region == [oracle.mask_id, oracle.mask_id, 1]
    n = 4000
    gens = generate(
        oracle,
        [Canvas([], region, (2, 3))] * n,
        build_decoder("ktoken", k=1),
        SamplerConfig(block=3, temperature=1.0),
        torch.Generator().manual_seed(0),
    )
    counts = torch.zeros(3, 3, dtype=torch.float64)
    for g in gens:
        assert g.region[2] == 1
        counts[g.region[0], g.region[1]] += 1
    target = oracle.joint[:, :, 1] / oracle.joint[:, :, 1].sum()
    assert 0.5 * float((counts / n - target).abs().sum()) < 0.04


def test_summary_counts_table3_fractions():
    rows = [
        {"id": "a", "mode": "posterior", "trace_ok": True, "steps_ok": True, "correct": True},
        {"id": "b", "mode": "posterior", "trace_ok": False, "steps_ok": True, "correct": True},
        {"id": "a", "mode": "prior", "trace_ok": True, "steps_ok": True, "correct": True},
        {"id": "b", "mode": "prior", "trace_ok": False, "steps_ok": False, "correct": False},
    ]
    for r in rows:
        r["answer_logprob"] = -1.0
    s = summarize_traces(rows)
    assert s["posterior"]["trace_ok"] == 0.5 and s["prior"]["accuracy"] == 0.5
    assert s["prior"]["steps_ok"] == 0.5 and s["posterior"]["steps_ok"] == 1.0
    assert s["posterior_where_prior_wrong"] == {"n": 1, "trace_ok": 0.0, "steps_ok": 1.0}


def test_posterior_command_on_tiny_arith(tmp_path):
    overrides = ["task=arith", "n=4", "prior=true", "threads=1", f"out_dir={tmp_path}"]
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = OmegaConf.to_container(compose("posterior", overrides=overrides), resolve=True)
    summary = posterior(cfg)
    records = [json.loads(line) for line in (tmp_path / "traces.jsonl").open()]
    assert len(records) == 8 and {r["mode"] for r in records} == {"posterior", "prior"}
    for r in records:
        assert len(r["region_ids"]) == 48 and r["answer_logprob"] <= 0
        assert r["answer_logprob"] == pytest.approx(sum(r["answer_token_logprobs"]))
        if r["mode"] == "posterior":
            assert r["answer_text"] == str(r["gold"])  # the answer block stayed pre-filled
    # the shipped model writes correct scratchpads for its own task
    assert summary["posterior"]["trace_ok"] == 1.0 and summary["problems"] == 4


def test_bad_value_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["posterior", "source=nowhere"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: source='nowhere'") and "\n" not in err


def test_posterior_and_trace_score_default_to_the_task_of_nclb_run():
    with initialize_config_dir(str(config_dir()), version_base=None):
        names = {
            name: compose(name, overrides=[]).task.name
            for name in ("config", "posterior", "trace_score")
        }
    assert names == {"config": "chain", "posterior": "chain", "trace_score": "chain"}
