"""KL(multi-token || single-token): the estimator against exact enumeration on an oracle."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nclb.config import config_dir
from nclb.errors import UserError
from nclb.kl import KLOptions, kl_options, kl_record, kl_summary
from nclb.models.oracle import OracleModel, random_joint
from nclb.runner import run
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.sampler.exact import sampler_probabilities
from nclb.sampler.loop import Generation, StepRecord
from nclb.tasks.template import plain_canvas

LENGTH = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def oracle() -> OracleModel:
    return OracleModel(random_joint(content=3, length=LENGTH, seed=1))


def sample(model, decoder, n, seed=0):
    canvases = [plain_canvas([], model.mask_id, LENGTH) for _ in range(n)]
    gens = generate(
        model,
        canvases,
        decoder,
        SamplerConfig(block=LENGTH, temperature=1.0),
        torch.Generator().manual_seed(seed),
    )
    return canvases, gens


def index(model, region):
    return int(sum(t * model.content ** (LENGTH - 1 - i) for i, t in enumerate(region)))


def test_k2_estimate_matches_exact_kl(oracle):
    """Tolerance: 4 standard errors of the sample mean, from 2000 samples (stderr < 0.1)."""
    decoder = build_decoder("ktoken", k=2)
    q = sampler_probabilities(oracle, decoder, block=LENGTH)
    p = oracle.flat
    exact = float((q * (q.clamp(min=1e-300).log() - p.log())).sum())
    assert exact > 0.3  # k=2 is far from the joint on this oracle
    canvases, gens = sample(oracle, decoder, 2000)
    recs = [kl_record(oracle, c, g) for c, g in zip(canvases, gens)]
    for g, r in zip(gens, recs):
        # per sample: log q is the sampler's exact log-probability of x, and p_single, whose
        # conditionals come from one joint, is the joint itself whatever the order
        x = index(oracle, g.region)
        assert r["log_q"] == pytest.approx(math.log(q[x]), abs=1e-4)
        assert r["log_p_single"] == pytest.approx(math.log(p[x]), abs=1e-4)
        assert r["pair_steps"] == 2 and r["multi_steps"] == 2
    summary = kl_summary([{"kl": r} for r in recs])
    assert summary["stderr"] < 0.1
    assert abs(summary["estimate"] - exact) < 4 * summary["stderr"]
    # the exact two-position step KLs, summed along each sample, estimate the same KL
    pair = torch.tensor([r["pair_kl_sum"] for r in recs], dtype=torch.float64)
    pair_se = float(pair.std() / math.sqrt(len(pair)))
    assert abs(float(pair.mean()) - exact) < 4 * pair_se + 1e-3


def test_k1_estimate_is_exactly_zero(oracle):
    canvases, gens = sample(oracle, build_decoder("ktoken", k=1), 20)
    for c, g in zip(canvases, gens):
        r = kl_record(oracle, c, g)
        assert r["estimate"] == 0.0 and r["pair_steps"] == 0 and r["multi_steps"] == 0


def test_pair_step_kl_is_the_enumerated_kl(oracle):
    """A step committing positions 0 and 1 from the empty state: its exact KL is
    KL(p(x0) p(x1) || p(x0, x1)) of the oracle's pair marginal."""
    joint = oracle.joint
    pair = joint.sum(dim=(2, 3))
    p0, p1 = pair.sum(1), pair.sum(0)
    lautum = float((p0[:, None] * p1[None, :] * (p0[:, None] * p1[None, :] / pair).log()).sum())
    x = [2, 0, 1, 1]
    steps = [
        StepRecord(0, [0, 1], x[:2], [0.0, 0.0], [0.1, 0.5]),
        StepRecord(1, [2], [x[2]], [0.0], [0.0]),
        StepRecord(2, [3], [x[3]], [0.0], [0.0]),
    ]
    gen = Generation(region=x, nfe=3, steps=steps)
    canvas = plain_canvas([], oracle.mask_id, LENGTH)
    r = kl_record(oracle, canvas, gen, opts=KLOptions(kl=True, kl_pair_mass=1.0))
    assert r["pair_kl"][0] == pytest.approx(lautum, abs=1e-5)
    assert r["pair_mass"][0] == pytest.approx(1.0, abs=1e-6)
    expected = math.log(p0[2] * p1[0] / pair[2, 0])
    assert r["estimate"] == pytest.approx(expected, abs=1e-4)


def test_options_need_samples_and_no_early_exit():
    with pytest.raises(UserError, match="temperature"):
        kl_options({"kl": True}, SamplerConfig(block=4))
    with pytest.raises(UserError, match="gamma"):
        kl_options({"kl": True}, SamplerConfig(block=4, temperature=1.0, gamma=0.1))
    with pytest.raises(UserError, match="kl_order"):
        kl_options({"kl_order": "random"}, SamplerConfig(block=4))
    assert not kl_options(None, SamplerConfig(block=4)).kl


def test_run_logs_kl_per_example_and_in_the_summary(tmp_path):
    overrides = [
        "model=oracle",
        "task=toy",
        "k=2",
        "temperature=1.0",
        "metrics.kl=true",
        "limit=12",
        f"out_dir={tmp_path}",
    ]
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    summary = run(cfg)
    assert summary["kl"]["n"] == 12
    assert summary["kl"]["estimate"] > 0 and summary["kl"]["pair_steps"] == 12 * 3
    default = OmegaConf.load(config_dir() / "config.yaml")
    assert default.metrics.kl is False
