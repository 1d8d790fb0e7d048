"""Per-position statistics of one forward pass: the chosen token and how sure the model is."""

from __future__ import annotations

from dataclasses import dataclass, fields

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
    """

    token: torch.Tensor
    logprob: torch.Tensor
    entropy: torch.Tensor
    confidence: torch.Tensor
    margin: torch.Tensor
    greedy: torch.Tensor

    def rows(self, keep: torch.Tensor) -> PositionStats:
        """The statistics of the rows where `keep` [B] is True."""
        return PositionStats(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})


def position_stats(
    logits: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
) -> PositionStats:
    """Entropy, confidence, margin and the chosen token for every position of `logits` [B, G, V]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    probs = logp.exp()
    entropy = torch.special.entr(probs).sum(-1)
    top2 = probs.topk(2, dim=-1).values if probs.shape[-1] > 1 else probs.repeat(1, 1, 2)
    greedy = logits.argmax(-1)
    if temperature > 0:
        tempered = torch.softmax(logits.float() / temperature, dim=-1)
        flat = tempered.reshape(-1, tempered.shape[-1])
        token = torch.multinomial(flat, 1, generator=generator).view(greedy.shape)
    else:
        token = greedy
    logprob = logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)
    return PositionStats(
        token=token,
        logprob=logprob,
        entropy=entropy,
        confidence=logprob.exp(),
        margin=top2[..., 0] - top2[..., 1],
        greedy=greedy,
    )
