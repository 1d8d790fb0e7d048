"""Batched decoding on the tiny model: batch 1, continuous batching (rows refilled from the
queue) and static batches give the same tokens, greedy or sampled; seeds reproduce samples; a
model that prefers the mask token cannot stall the loop."""

from __future__ import annotations

import pytest
import torch

from nclb.experiments.bench import Workload, load_workload, settings
from nclb.models.oracle import CharCodec
from nclb.runs.runner import decode
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.sampler.stats import position_stats
from nclb.types import Canvas

_WORKLOADS: dict[str, Workload] = {}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the outputs compared are the same either way, and on a small shared CPU
    more threads only make the many small forward passes slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def workload(task: str) -> Workload:
    """The tiny model for `task` with its first 64 test examples (loaded once per session)."""
    if task not in _WORKLOADS:
        _WORKLOADS[task] = load_workload("tiny", task, 64, "cpu")
    return _WORKLOADS[task]


def outcomes(w: Workload, overrides: list[str], n: int, batch_size: int, **kwargs):
    """(region, nfe, exit_step, committed positions per step) of the first n examples, decoded
    through the runner's `decode` with seed 0 unless `generator` is given."""
    s = settings(w.base, overrides)
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    canvases = [c for _, c in w.items[:n]]
    gens = decode(w.model, canvases, s.decoder, s.sampler, batch_size, **kwargs)
    return [(g.region, g.nfe, g.exit_step, [st.positions for st in g.steps]) for g in gens]


# (task, overrides, examples): the examples decoded at batch 1, with continuous batching at
# batch 8 (the queue refills the rows as they finish), and as static batches of 64; the cheap
# settings use all 64 examples so that a full 64-row batch is checked.
CASES = [
    ("arith", ["decoder=ktoken", "k=1"], 8),
    ("arith", ["decoder=ktoken", "k=2", "decoder.order=random"], 16),
    ("arith", ["decoder=med", "lam=0.2"], 64),
    ("arith", ["decoder=ar_med", "lam=0.2"], 32),
    ("arith", ["decoder=threshold"], 24),
    ("arith", ["decoder=llada", "decoder.remasking=random"], 8),
    ("arith", ["decoder=ktoken", "k=1", "gamma=0.1"], 64),
    ("sudoku9", ["decoder=ktoken", "k=1"], 4),
    ("sudoku9", ["decoder=med", "lam=0.2"], 64),
    ("sudoku9", ["decoder=threshold"], 24),
]


@pytest.mark.parametrize(("task", "overrides", "n"), CASES, ids=lambda v: str(v))
def test_continuous_and_static_batches_match_batch_1(task, overrides, n):
    w = workload(task)
    prompts = {len(c.prompt) for _, c in w.items[:n]}
    single = outcomes(w, overrides, n, 1)
    assert outcomes(w, overrides, n, 8) == single
    assert outcomes(w, overrides, n, 64, continuous=False) == single
    if task == "arith":
        assert len(prompts) > 1, "the arith batch should mix prompt lengths (left padding)"
    if "gamma=0.1" in overrides:
        assert any(exit_step is not None for _, _, exit_step, _ in single)
    # The settings commit different numbers of positions per step, so rows finish apart.
    if "decoder=med" in overrides or "decoder=threshold" in overrides:
        assert len({nfe for _, nfe, _, _ in single}) > 1


def test_sampled_outputs_do_not_depend_on_the_batching():
    w = workload("arith")
    sampled = ["decoder=med", "lam=0.2", "temperature=1.0"]
    single = outcomes(w, sampled, 16, 1)
    assert outcomes(w, sampled, 16, 5) == single
    assert outcomes(w, sampled, 16, 16, continuous=False) == single
    assert outcomes(w, sampled, 16, 6, continuous=False) == single
    assert single != outcomes(w, ["decoder=med", "lam=0.2"], 16, 16)


def test_same_seed_same_samples_other_seed_other_samples():
    w = workload("arith")
    sampled = ["decoder=med", "lam=0.2", "temperature=2.0"]

    def seeded(seed: int):
        return outcomes(w, sampled, 16, 8, generator=torch.Generator().manual_seed(seed))

    first = seeded(5)
    assert seeded(5) == first
    assert seeded(6) != first
    greedy = outcomes(w, ["decoder=med", "lam=0.2"], 16, 8)
    assert first != greedy or seeded(6) != greedy, "temperature=2 should sample"


class MaskLovingModel:
    """Logits that put the mask token first at every position (token 0 second)."""

    def __init__(self) -> None:
        self.mask_id, self.pad_id, self.eos_ids = 3, 4, (5,)
        self.vocab_size = 6
        self.supports_padding = True
        self.cached_forward = None
        self.device = torch.device("cpu")
        self.codec = CharCodec("abc")

    def prompt_ids(self, text: str) -> list[int]:
        return self.codec.encode(text)

    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = torch.zeros(*ids.shape, self.vocab_size)
        out[..., self.mask_id] = 8.0
        out[..., 0] = 2.0
        return out if columns is None else out[:, : columns.shape[1]]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_model_that_prefers_the_mask_token_cannot_stall_the_loop(temperature):
    model = MaskLovingModel()
    canvases = [Canvas([1], [model.mask_id] * 5) for _ in range(3)]
    cfg = SamplerConfig(block=5, temperature=temperature)
    gens = generate(model, canvases, build_decoder("ktoken", k=1), cfg, torch.Generator())
    for g in gens:
        assert g.nfe == 5
        assert model.mask_id not in g.region
        if temperature == 0:
            assert g.region == [0] * 5


def test_forbidding_a_token_changes_only_the_positions_that_chose_it():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, 10)
    logits[..., 9] -= 20.0
    logits[1, 2, 9] = 50.0  # position (1, 2) picks the forbidden id 9
    free, guarded = position_stats(logits), position_stats(logits, forbid=9)
    changed = free.greedy != guarded.greedy
    assert changed.nonzero().tolist() == [[1, 2]]
    assert guarded.greedy[1, 2] == logits[1, 2, :9].argmax()
    assert torch.equal(free.entropy, guarded.entropy) and torch.equal(free.margin, guarded.margin)
    top2 = torch.log_softmax(logits, -1).exp().topk(2, dim=-1).values
    assert torch.equal(free.margin, top2[..., 0] - top2[..., 1])
