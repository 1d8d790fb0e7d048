"""The sampler loop: windows, pre-filled spans, early exit, NFE, eos stopping, batching."""

from __future__ import annotations

import pytest
import torch

from conftest import FixedLogitsModel
from nclb.errors import UserError
from nclb.models.oracle import OracleModel, palindrome_joint
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.sampler.stats import position_stats
from nclb.tasks.base import Canvas
from nclb.tasks.template import infilling_canvas

VOCAB = 5
REASONING, ANSWER = 4, 2
SCALES = torch.tensor([3.0, 1.0])  # how fast each answer position sharpens


def answer_logits(filled: torch.Tensor) -> torch.Tensor:
    """[B, 2, V]: answer logits that sharpen with the number of filled reasoning positions."""
    lg = torch.zeros(filled.shape[0], ANSWER, VOCAB)
    lg[:, :, 0] = SCALES * filled.unsqueeze(1).float()
    return lg


def sharpening_model() -> FixedLogitsModel:
    def fn(region: torch.Tensor) -> torch.Tensor:
        filled = (region[:, :REASONING] != VOCAB).sum(1)
        lg = torch.zeros(region.shape[0], REASONING + ANSWER, VOCAB)
        lg[:, :REASONING, 1] = 5.0 - torch.arange(REASONING)  # confident, left to right
        lg[:, REASONING:] = answer_logits(filled)
        return lg

    return FixedLogitsModel(fn, vocab=VOCAB, length=REASONING + ANSWER)


def exit_stats(how: str) -> list[float]:
    ent = position_stats(answer_logits(torch.arange(REASONING + 1))).entropy
    return (ent.mean(1) if how == "mean" else ent.max(1).values).tolist()


def canvas(model) -> Canvas:
    return Canvas(
        [1], [model.mask_id] * (REASONING + ANSWER), answer=(REASONING, REASONING + ANSWER)
    )


@pytest.mark.parametrize("how", ["mean", "max"])
def test_early_exit_fires_exactly_when_stat_crosses_gamma(how):
    stats = exit_stats(how)
    assert stats == sorted(stats, reverse=True)
    dec = build_decoder("ktoken", k=1, order="left_to_right")
    for gamma in [stats[0] + 1, *[(a + b) / 2 for a, b in zip(stats, stats[1:])], stats[-1] / 2]:
        model = sharpening_model()
        g = generate(
            model, [canvas(model)], dec, SamplerConfig(block=REASONING, gamma=gamma, exit_stat=how)
        )[0]
        fires = [t for t, s in enumerate(stats) if s < gamma]
        if fires:
            t = fires[0]
            assert g.exit_step == t and g.nfe == t + 1
            assert g.region[REASONING:] == [0, 0]  # answer committed by argmax
            assert g.region[:REASONING].count(model.mask_id) == REASONING - t
            assert g.steps[-1].early_exit and g.steps[-1].positions == [4, 5]
        else:
            assert g.exit_step is None and g.nfe == REASONING + ANSWER


def test_mean_and_max_differ():
    mean, mx = exit_stats("mean"), exit_stats("max")
    assert any(a < b for a, b in zip(mean, mx))


def test_no_exit_without_gamma():
    model = sharpening_model()
    g = generate(model, [canvas(model)], build_decoder("ktoken"), SamplerConfig(block=REASONING))[0]
    assert g.exit_step is None and g.nfe == 6


def test_nfe_is_counted_per_example_and_rows_leave_the_batch():
    model = OracleModel(palindrome_joint())
    m = model.mask_id
    canvases = [Canvas([], [m] * 6), Canvas([], [0, m, m, m, m, 0]), Canvas([], [0, 1, 2, 2, 1, m])]
    gens = generate(model, canvases, build_decoder("ktoken", k=1), SamplerConfig(block=6))
    assert [g.nfe for g in gens] == [6, 4, 1]

    calls = {"rows": 0, "passes": 0}
    inner = model.logits

    def counting(ids, attention_mask=None):
        calls["rows"] += ids.shape[0]
        calls["passes"] += 1
        return inner(ids, attention_mask)

    model.logits = counting
    generate(model, canvases, build_decoder("ktoken", k=1), SamplerConfig(block=6))
    assert calls == {"rows": 11, "passes": 6}


def test_prefilled_positions_are_kept_and_never_committed():
    model = OracleModel(palindrome_joint())
    m = model.mask_id
    gens = generate(
        model,
        [Canvas([], [2, m, m, m, m, m])],
        build_decoder("med", lam=0.5),
        SamplerConfig(block=6, temperature=1.0),
        torch.Generator().manual_seed(0),
    )
    g = gens[0]
    assert g.region[0] == 2 and g.region[5] == 2
    assert 0 not in [p for s in g.steps for p in s.positions]


def test_semi_autoregressive_window():
    model = OracleModel(palindrome_joint())
    gens = generate(
        model,
        [Canvas([], [model.mask_id] * 6)],
        build_decoder("ktoken", k=1),
        SamplerConfig(block=2),
    )
    order = [s.positions[0] for s in gens[0].steps]
    assert (
        sorted(order[:2]) == [0, 1] and sorted(order[2:4]) == [2, 3] and sorted(order[4:]) == [4, 5]
    )


def test_stop_on_eos_fills_the_rest():
    eos = VOCAB + 2

    def fn(region):
        lg = torch.zeros(region.shape[0], 6, VOCAB + 3)
        lg[:, :, 1] = 1.0
        lg[:, 1, eos] = 9.0  # position 1 is very sure to be eos
        lg[:, :, VOCAB:eos] = -1e9
        return lg

    model = FixedLogitsModel(fn, vocab=VOCAB, length=6)
    model.logits = lambda ids, attention_mask=None: fn(ids)
    cfg = SamplerConfig(block=6, stop_on_eos=True)
    g = generate(model, [Canvas([], [model.mask_id] * 6)], build_decoder("ktoken"), cfg)[0]
    assert g.region == [1, eos, eos, eos, eos, eos] and g.nfe == 2
    g = generate(
        model, [Canvas([], [model.mask_id] * 6)], build_decoder("ktoken"), SamplerConfig(block=6)
    )[0]
    assert g.nfe == 6


def test_batch_equivalence_on_oracle():
    model = OracleModel(palindrome_joint(seed=4))
    m = model.mask_id
    canvases = [
        Canvas([], [m] * 6),
        Canvas([], [1, m, m, m, m, m]),
        Canvas([], [m, 2, m, m, m, m]),
    ] * 3
    dec = build_decoder("med", lam=0.2)
    batched = generate(model, canvases, dec, SamplerConfig(block=3))
    single = [generate(model, [c], dec, SamplerConfig(block=3))[0] for c in canvases]
    assert [g.region for g in batched] == [g.region for g in single]
    assert [g.nfe for g in batched] == [g.nfe for g in single]


def test_same_seed_same_samples():
    model = OracleModel(palindrome_joint())
    canvases = [Canvas([], [model.mask_id] * 6) for _ in range(20)]
    cfg = SamplerConfig(block=6, temperature=1.0)
    runs = [
        generate(
            model, canvases, build_decoder("ktoken", k=2), cfg, torch.Generator().manual_seed(7)
        )
        for _ in range(2)
    ]
    assert [g.region for g in runs[0]] == [g.region for g in runs[1]]


def test_infilling_template_and_posterior_prefill():
    model = OracleModel(palindrome_joint(content=4, length=8))
    c = infilling_canvas([], model, 8, delimiter="d", answer_length=2)
    assert c.region == [model.mask_id] * 5 + [3] + [model.mask_id] * 2 and c.answer == (6, 8)
    post = infilling_canvas([], model, 8, delimiter="d", answer_length=2, answer_text="b")
    assert post.region[6:] == [1, model.eos_ids[0]]
    with pytest.raises(UserError):
        infilling_canvas([], model, 8, delimiter="d", answer_length=2, answer_text="abc")
    with pytest.raises(UserError):
        infilling_canvas([], model, 3, delimiter="dd", answer_length=2)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"block": 0}, "block"),
        ({"block": 4, "gamma": -0.1}, "gamma"),
        ({"block": 4, "exit_stat": "median"}, "exit_stat"),
        ({"block": 4, "temperature": -1.0}, "temperature"),
    ],
)
def test_sampler_config_validation(kwargs, key):
    with pytest.raises(UserError, match=key):
        SamplerConfig(**kwargs)
