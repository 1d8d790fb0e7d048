"""Same logits in, same tokens out: nclb's decoders against the published reference samplers.

The two reference loops below are re-implementations, written from the published algorithm
descriptions, of LLaDA's `generate` (low-confidence remasking, semi-autoregressive blocks) and
Dream's `diffusion_generate` with alg="entropy" and one token per step.
"""

from __future__ import annotations

import pytest
import torch

from conftest import FixedLogitsModel
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.sampler.decoders.llada import llada_schedule
from nclb.types import Canvas


def random_net(vocab: int, seed: int):
    """A fixed random function from a region state to logits that depend on every position."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab + 3, 16, generator=g)
    mix = torch.randn(16, 16, generator=g)
    out = torch.randn(16, vocab, generator=g) * 2
    pos = torch.randn(64, 16, generator=g)

    def fn(region: torch.Tensor) -> torch.Tensor:
        h = emb[region] + pos[: region.shape[1]]
        h = torch.tanh(h + h.mean(1, keepdim=True) @ mix)
        return h @ out

    return fn


def llada_reference(model, prompt: list[int], gen_length: int, block_length: int, steps: int):
    x = torch.tensor([prompt + [model.mask_id] * gen_length])
    p0 = len(prompt)
    blocks = gen_length // block_length
    per_block = steps // blocks
    for b in range(blocks):
        start, end = p0 + b * block_length, p0 + (b + 1) * block_length
        counts = llada_schedule((x[:, start:end] == model.mask_id).sum(1), per_block)
        for i in range(per_block):
            masked = x == model.mask_id
            logits = model.logits(x)
            x0 = logits.argmax(-1)
            probs = torch.softmax(logits, -1)
            x0_p = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, end:] = float("-inf")
            x0 = torch.where(masked, x0, x)
            conf = torch.where(masked, x0_p, float("-inf"))
            k = int(counts[0, i])
            if k:
                idx = conf[0].topk(k).indices
                x[0, idx] = x0[0, idx]
    return x[0, p0:].tolist()


def dream_entropy_reference(model, prompt: list[int], gen_length: int):
    x = torch.tensor([prompt + [model.mask_id] * gen_length])
    for _ in range(gen_length):
        masked = x == model.mask_id
        logits = model.logits(x)[masked]
        probs = torch.softmax(logits, -1)
        neg_entropy = (probs * torch.log(probs.clamp(min=1e-30))).sum(-1)
        x0 = probs.argmax(-1)
        full = torch.full(x.shape, float("-inf"))
        full[masked] = neg_entropy
        pick = full.view(-1).topk(1).indices
        candidates = torch.zeros_like(x).view(-1)
        candidates[masked.view(-1)] = x0
        x.view(-1)[pick] = candidates[pick]
    return x[0, len(prompt) :].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("gen_length", "block", "steps"), [(8, 4, 4), (8, 8, 8), (12, 4, 6), (8, 2, 8)]
)
def test_llada_decoder_matches_reference(seed, gen_length, block, steps):
    model = FixedLogitsModel(random_net(7, seed), vocab=7, length=gen_length)
    prompt = [1, 2]
    expected = llada_reference(model, prompt, gen_length, block, steps)
    blocks = gen_length // block
    dec = build_decoder("llada", steps_per_block=steps // blocks)
    got = generate(
        model, [Canvas(prompt, [model.mask_id] * gen_length)], dec, SamplerConfig(block=block)
    )
    assert got[0].region == expected
    assert got[0].nfe <= steps


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_entropy_k1_matches_dream_reference(seed):
    gen_length = 9
    model = FixedLogitsModel(random_net(7, seed), vocab=7, length=gen_length)
    expected = dream_entropy_reference(model, [3], gen_length)
    dec = build_decoder("ktoken", k=1, order="entropy")
    got = generate(
        model, [Canvas([3], [model.mask_id] * gen_length)], dec, SamplerConfig(block=gen_length)
    )
    assert got[0].region == expected and got[0].nfe == gen_length


def test_llada_hand_worked_schedule():
    # 8 positions, block 4, 2 steps per block; the second block has one pre-filled position.
    assert llada_schedule(torch.tensor([4, 3, 5, 1]), 2).tolist() == [
        [2, 2],
        [2, 1],
        [3, 2],
        [1, 0],
    ]
    conf = torch.tensor([0.9, 0.1, 0.5, 0.7, 0.2, 0.6, 0.8, 0.3])

    def fn(region: torch.Tensor) -> torch.Tensor:
        # the argmax token is 0 everywhere, with probability conf[j] at position j
        p = conf.expand(region.shape[0], -1)
        rest = (1 - p) / 4
        probs = torch.stack([p, rest, rest, rest, rest], -1)
        return probs.log()

    model = FixedLogitsModel(fn, vocab=5, length=8)
    region = [model.mask_id] * 8
    region[5] = 2  # pre-filled
    dec = build_decoder("llada", steps_per_block=2)
    g = generate(model, [Canvas([], region)], dec, SamplerConfig(block=4))[0]
    assert [s.positions for s in g.steps] == [[0, 3], [1, 2], [6, 7], [4]]
    assert g.nfe == 4 and g.region[5] == 2
