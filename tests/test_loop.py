"""The sampler loop: windows, pre-filled spans, early exit, NFE, eos stopping, batching."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import FixedLogitsModel
from nclb.errors import UserError
from nclb.models.oracle import OracleModel, palindrome_joint
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.sampler.stats import position_stats
from nclb.tasks.template import infilling_canvas
from nclb.types import Canvas

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

    def counting(ids, attention_mask=None, columns=None):
        calls["rows"] += ids.shape[0]
        calls["passes"] += 1
        return inner(ids, attention_mask, columns)

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
    model.logits = lambda ids, attention_mask=None, columns=None: fn(ids)
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


def mixed_canvases(model) -> list[Canvas]:
    """Oracle canvases that need 1 to 6 passes, with prompts of 0 to 3 tokens."""
    m = model.mask_id
    regions = [
        [m] * 6,
        [0, m, m, m, m, 0],
        [0, 1, 2, 2, 1, m],
        [m, 2, m, m, m, m],
        [1, m] + [m] * 4,
    ]
    return [Canvas([0] * (i % 4), regions[i % len(regions)]) for i in range(23)]


def counting_rows(model) -> list[int]:
    """Wrap the model's logits so that the rows of every pass are appended to the list."""
    rows, inner = [], model.logits

    def counting(ids, attention_mask=None, columns=None):
        rows.append(ids.shape[0])
        return inner(ids, attention_mask, columns)

    model.logits = counting
    return rows


@pytest.mark.parametrize("name", ["ktoken", "med", "ar_med", "threshold", "llada"])
def test_continuous_batching_gives_the_tokens_of_batch_1_and_keeps_rows_full(name):
    model = OracleModel(palindrome_joint(seed=4))
    canvases = mixed_canvases(model)
    dec = build_decoder(name)
    cfg = SamplerConfig(block=3)
    single = [generate(model, [c], dec, cfg)[0] for c in canvases]
    rows = counting_rows(model)
    finished: list[int] = []
    gens = generate(model, canvases, dec, cfg, None, lambda i, g: finished.append(i), 4)
    assert [(g.region, g.nfe, [s.positions for s in g.steps]) for g in gens] == [
        (g.region, g.nfe, [s.positions for s in g.steps]) for g in single
    ]
    assert sorted(finished) == list(range(len(canvases)))
    assert finished != sorted(finished), "rows finish apart, so they are reported out of order"
    # Every pass is full (4 rows) until the queue runs dry; then the batch only drains.
    assert sum(rows) == sum(g.nfe for g in single)
    drain = next(i for i, r in enumerate(rows) if r < 4)
    assert all(r == 4 for r in rows[:drain])
    assert rows[drain:] == sorted(rows[drain:], reverse=True)
    assert len(rows) - drain < max(g.nfe for g in single)


def test_continuous_batching_with_early_exit_matches_batch_1():
    model = sharpening_model()
    canvases = [canvas(model) for _ in range(5)]
    dec = build_decoder("ktoken", k=1, order="left_to_right")
    for gamma in (exit_stats("mean")[2], None):
        cfg = SamplerConfig(block=REASONING, gamma=gamma)
        single = [generate(model, [c], dec, cfg)[0] for c in canvases]
        batched = generate(model, canvases, dec, cfg, batch_size=2)
        assert [(g.region, g.nfe, g.exit_step) for g in batched] == [
            (g.region, g.nfe, g.exit_step) for g in single
        ]
        assert (single[0].exit_step is not None) == (gamma is not None)


def test_a_canvas_with_nothing_masked_finishes_without_a_pass():
    model = OracleModel(palindrome_joint())
    m = model.mask_id
    canvases = [Canvas([], [0, 1, 2, 2, 1, 0]), Canvas([], [0, m, 2, 2, 1, 0])]
    rows = counting_rows(model)
    gens = generate(model, canvases, build_decoder("ktoken"), SamplerConfig(block=6), None, None, 1)
    assert [g.nfe for g in gens] == [0, 1] and gens[0].region == [0, 1, 2, 2, 1, 0]
    assert rows == [1]


class HostReads(TorchDispatchMode):
    """Counts the operations that make the host wait for a device: reading a value
    (item, bool, tolist), nonzero, and boolean-mask indexing."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        bool_index = name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        )
        if name in ("_local_scalar_dense", "nonzero", "masked_select") or bool_index:
            self.count += 1
        return func(*args, **kwargs)


def test_a_step_reads_one_flag_vector_from_the_device(monkeypatch):
    model = OracleModel(palindrome_joint(seed=4))
    canvases = mixed_canvases(model)
    reads = HostReads()
    per_pass: list[int] = []
    inner_tolist = torch.Tensor.tolist

    def tolist(self):
        reads.count += 1
        return inner_tolist(self)

    inner = model.logits

    def logits(ids, attention_mask=None, columns=None):
        per_pass.append(reads.count)
        reads.count = 0
        return inner(ids, attention_mask, columns)

    model.logits = logits
    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    cfg = SamplerConfig(block=3, temperature=1.0, gamma=0.5)
    finishing: set[int] = set()  # the passes after which rows finished

    def done(index, gen):
        finishing.add(len(per_pass) - 1)

    with reads:
        generate(model, canvases, build_decoder("med", lam=0.5), cfg, torch.Generator(), done, 4)
    per_pass = per_pass[1:] + [reads.count]  # reads made after each pass, up to the next one
    # One read per step (the finished flags), one more when rows finish (their results).
    assert per_pass == [1 + (i in finishing) for i in range(len(per_pass))]
    assert 0 < len(finishing) < len(per_pass)
