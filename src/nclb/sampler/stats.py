"""Per-position statistics of one forward pass: the chosen token and how sure the model is."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PositionStats:
    """Tensors of shape [B, G] over the generation region.

    token: the token each position would take (argmax, or a sample at `temperature`).
    logprob: log p(token) under the model's distribution (temperature 1).
    entropy: entropy of the model's distribution, in nats.
    confidence: p(token), the probability of the chosen token (LLaDA's low-confidence score).
    margin: p(top1) - p(top2) (Dream's margin score).
    greedy: the argmax token (used to commit the answer block on early exit).
    top1: p(greedy), the largest probability (a confidence that does not depend on a sample).
    """

    token: torch.Tensor
    logprob: torch.Tensor
    entropy: torch.Tensor
    confidence: torch.Tensor
    margin: torch.Tensor
    greedy: torch.Tensor
    top1: torch.Tensor


def position_stats(
    logits: torch.Tensor,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    forbid: int | None = None,
    uniform: torch.Tensor | None = None,
) -> PositionStats:
    """Entropy, confidence, margin and the chosen token for every position of `logits` [B, G, V].

    Everything is computed on the logits' device. At `temperature` > 0 the token is drawn from
    softmax(logits / temperature) by inverting its cumulative distribution at one uniform number
    per position: `uniform` [B, G] in (0, 1) (the sampler passes each example's own stream), or,
    without it, numbers drawn from `generator` on its device (or from torch's global generator).

    forbid: a token id that is never chosen (the sampler passes the mask id: committing a mask
    would leave the position masked, and the loop would never end). The argmax is the best other
    token where it would be that id, and samples are drawn with that id's mass removed (the
    argmax where a position has no other mass); the entropy and margin are unchanged.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    probs = logp.exp()
    entropy = torch.special.entr(probs).sum(-1)
    top1, best = probs.max(dim=-1)
    # The runner-up: the max once the best entry is set aside (the same values as topk(2), and
    # several times faster on CPU). With one token in the vocabulary the margin is 0.
    top2 = top1
    if probs.shape[-1] > 1:
        top2 = probs.scatter(-1, best.unsqueeze(-1), float("-inf")).max(dim=-1).values
    greedy = logits.argmax(-1)
    if forbid is not None:
        greedy = torch.where(greedy == forbid, _runner_up(logits, forbid), greedy)
    token = greedy
    if temperature > 0:
        if uniform is None:
            uniform = _draw(greedy.shape, generator).to(logits.device)
        token = _inverse_cdf(logits, temperature, uniform, forbid, greedy)
    logprob = logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)
    return PositionStats(
        token=token,
        logprob=logprob,
        entropy=entropy,
        confidence=logprob.exp(),
        margin=top1 - top2,
        top1=top1,
        greedy=greedy,
    )


def _runner_up(logits: torch.Tensor, forbid: int) -> torch.Tensor:
    """The argmax of every position once the token `forbid` is set aside (read through two views
    on either side of it, so the logits are not copied)."""
    vocab = logits.shape[-1]
    if forbid == 0 or forbid == vocab - 1:
        rest = logits[..., 1:] if forbid == 0 else logits[..., :-1]
        return rest.argmax(-1) + (1 if forbid == 0 else 0)
    left, right = logits[..., :forbid].max(-1), logits[..., forbid + 1 :].max(-1)
    return torch.where(right.values > left.values, right.indices + forbid + 1, left.indices)


def _draw(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform numbers in [0, 1) of `shape` from `generator` (on its device) or torch's own."""
    if generator is None:
        return torch.rand(shape)
    return torch.rand(shape, generator=generator, device=generator.device)


def _inverse_cdf(
    logits: torch.Tensor,
    temperature: float,
    uniform: torch.Tensor,
    forbid: int | None,
    greedy: torch.Tensor,
) -> torch.Tensor:
    """The token of each position whose cumulative tempered probability first reaches `uniform`
    times the total (tokens of zero probability are never drawn)."""
    cdf = torch.softmax(logits.float() / temperature, dim=-1)
    if forbid is not None:
        cdf[..., forbid] = 0.0
    cdf = cdf.cumsum_(-1)
    total = cdf[..., -1:]
    # At least the smallest normal float, so that a token of zero probability at the start of
    # the vocabulary cannot be reached by an underflowed product.
    target = (uniform.to(cdf.dtype).unsqueeze(-1) * total).clamp(min=torch.finfo(cdf.dtype).tiny)
    drawn = torch.searchsorted(cdf, target).squeeze(-1).clamp(max=logits.shape[-1] - 1)
    return torch.where(total.squeeze(-1) > 0, drawn, greedy)


def blank_stats(rows: int, g: int, mask_id: int, device: torch.device) -> PositionStats:
    """Statistics [rows, g] for positions a pass did not compute: zeros, tokens the mask id
    (never read: the loop only reads the positions it asked for)."""
    zeros = torch.zeros(rows, g, device=device)
    token = torch.full((rows, g), mask_id, dtype=torch.long, device=device)
    return PositionStats(
        token, zeros, zeros.clone(), zeros.clone(), zeros.clone(), token.clone(), zeros.clone()
    )


def scatter_stats(
    into: PositionStats, rows: torch.Tensor, columns: torch.Tensor, part: PositionStats
) -> None:
    """Write `part` ([len(rows), Q], at region offsets `columns`) into `into`'s rows `rows`."""
    where = (rows.unsqueeze(1), columns)
    for name in PositionStats.__dataclass_fields__:
        target = getattr(into, name)
        target[where] = getattr(part, name).to(target.dtype)
