"""Decoders against the exact oracle: distributions by enumeration, equivalences, extremes."""

from __future__ import annotations

import pytest
import torch

from nclb.models.oracle import OracleModel, palindrome_joint, random_joint
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.sampler.exact import sampler_probabilities
from nclb.tasks.template import plain_canvas


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


@pytest.fixture(scope="module")
def oracle() -> OracleModel:
    return OracleModel(random_joint(content=3, length=4, seed=1))


@pytest.mark.parametrize("order", ["entropy", "margin", "left_to_right"])
def test_k1_is_the_exact_joint(oracle, order):
    q = sampler_probabilities(oracle, build_decoder("ktoken", k=1, order=order), block=4)
    assert tv(q, oracle.flat) < 1e-9


def test_k2_is_not_the_joint(oracle):
    q = sampler_probabilities(oracle, build_decoder("ktoken", k=2), block=4)
    assert abs(float(q.sum()) - 1.0) < 1e-9
    assert tv(q, oracle.flat) > 0.05


def test_sampled_k1_matches_joint_empirically():
    model = OracleModel(random_joint(content=2, length=3, seed=3))
    canvases = [plain_canvas([], model.mask_id, 3) for _ in range(6000)]
    gens = generate(
        model,
        canvases,
        build_decoder("ktoken", k=1),
        SamplerConfig(block=3, temperature=1.0),
        torch.Generator().manual_seed(0),
    )
    counts = torch.zeros(8, dtype=torch.float64)
    for g in gens:
        counts[g.region[0] * 4 + g.region[1] * 2 + g.region[2]] += 1
    assert tv(counts / counts.sum(), model.flat) < 0.03


def test_k2_breaks_palindromes_when_sampling():
    model = OracleModel(palindrome_joint())
    canvases = [plain_canvas([], model.mask_id, 6) for _ in range(400)]
    cfg = SamplerConfig(block=6, temperature=1.0)

    def valid(decoder) -> float:
        gens = generate(model, canvases, decoder, cfg, torch.Generator().manual_seed(0))
        return sum(g.region == g.region[::-1] for g in gens) / len(gens)

    assert valid(build_decoder("ktoken", k=1)) == 1.0
    assert valid(build_decoder("ktoken", k=2)) < 0.6


@pytest.mark.parametrize("rule", ["per_position", "cumulative"])
def test_med_lam0_equals_k1(oracle, rule):
    canvases = [plain_canvas([], oracle.mask_id, 4) for _ in range(64)]
    cfg = SamplerConfig(block=4, temperature=1.0)
    a = generate(
        oracle, canvases, build_decoder("ktoken", k=1), cfg, torch.Generator().manual_seed(5)
    )
    b = generate(
        oracle,
        canvases,
        build_decoder("med", lam=0.0, rule=rule),
        cfg,
        torch.Generator().manual_seed(5),
    )
    assert [g.region for g in a] == [g.region for g in b]
    assert [[s.positions for s in g.steps] for g in a] == [
        [s.positions for s in g.steps] for g in b
    ]
    q = sampler_probabilities(oracle, build_decoder("med", lam=0.0, rule=rule), block=4)
    assert tv(q, oracle.flat) < 1e-9


@pytest.mark.parametrize("name", ["med", "ar_med"])
def test_huge_lam_commits_everything_at_once(oracle, name):
    canvases = [plain_canvas([], oracle.mask_id, 4) for _ in range(3)]
    gens = generate(oracle, canvases, build_decoder(name, lam=1e9), SamplerConfig(block=4))
    assert all(g.nfe == 1 and len(g.steps[0].positions) == 4 for g in gens)


def test_med_commits_only_low_entropy_extras():
    model = OracleModel(palindrome_joint(content=3, length=6, seed=2))
    canvases = [plain_canvas([], model.mask_id, 6) for _ in range(16)]
    gens = generate(
        model,
        canvases,
        build_decoder("med", lam=0.3),
        SamplerConfig(block=6, temperature=1.0),
        torch.Generator().manual_seed(0),
    )
    for g in gens:
        assert g.region == g.region[::-1]  # MED never pairs two uncertain coupled positions
        for s in g.steps:
            lowest = min(s.entropies)
            extras = sorted(s.entropies)[1:]
            assert all(e < 0.3 for e in extras), (lowest, extras)


def test_ktoken_left_to_right_block1_is_autoregressive(oracle):
    canvases = [plain_canvas([], oracle.mask_id, 4) for _ in range(8)]
    for block in (1, 4):
        gens = generate(
            oracle,
            canvases,
            build_decoder("ktoken", k=1, order="left_to_right"),
            SamplerConfig(block=block, temperature=1.0),
            torch.Generator().manual_seed(1),
        )
        for g in gens:
            assert [s.positions for s in g.steps] == [[0], [1], [2], [3]]
    q = sampler_probabilities(oracle, build_decoder("ktoken", k=1, order="entropy"), block=1)
    assert tv(q, oracle.flat) < 1e-9


def test_ar_med_extends_rightward_only(oracle):
    dec = build_decoder("ar_med", lam=0.7)
    canvases = [plain_canvas([], oracle.mask_id, 4) for _ in range(32)]
    gens = generate(
        oracle,
        canvases,
        dec,
        SamplerConfig(block=4, temperature=1.0),
        torch.Generator().manual_seed(2),
    )
    for g in gens:
        flat = [p for s in g.steps for p in s.positions]
        assert flat == [0, 1, 2, 3]
        for s in g.steps:
            assert s.positions == list(range(s.positions[0], s.positions[0] + len(s.positions)))
            assert all(e < 0.7 for e in s.entropies[1:])


def test_threshold_commits_confident_positions():
    probs = torch.zeros([3] * 5, dtype=torch.float64)
    for v, w in enumerate([0.5, 0.3, 0.2]):
        probs[(v,) * 5] = w  # only constant sequences: one commit decides all the rest
    model = OracleModel(probs)
    canvases = [plain_canvas([], model.mask_id, 5) for _ in range(4)]
    gens = generate(model, canvases, build_decoder("threshold", tau=0.99), SamplerConfig(block=5))
    for g in gens:
        assert g.nfe == 2 and [len(s.positions) for s in g.steps] == [1, 4]
        assert g.region == [0] * 5
    slow = generate(model, canvases, build_decoder("threshold", tau=1.0), SamplerConfig(block=5))
    assert all(g.nfe == 5 for g in slow)
