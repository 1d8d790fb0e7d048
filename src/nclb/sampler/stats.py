"""Per-position statistics of one forward pass: the chosen token and how sure the model is."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

NEG = float("-inf")


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

    def rows(self, keep: torch.Tensor | slice) -> PositionStats:
        """The statistics of the rows where `keep` [B] is True (or of a slice of rows)."""
        if isinstance(keep, slice) and keep == slice(None):
            return self
        return PositionStats(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def to(self, device: torch.device | str) -> PositionStats:
        """The statistics on `device` (they are [B, G], so moving them is cheap)."""
        if self.token.device == torch.device(device):  # all fields share one device
            return self
        # Two copies (one per dtype) instead of one per field: each copy waits for the device.
        floats = torch.stack([self.logprob, self.entropy, self.confidence, self.margin])
        longs = torch.stack([self.token, self.greedy])
        logprob, entropy, confidence, margin = floats.to(device).unbind(0)
        token, greedy = longs.to(device).unbind(0)
        return PositionStats(
            token=token,
            logprob=logprob,
            entropy=entropy,
            confidence=confidence,
            margin=margin,
            greedy=greedy,
        )


def position_stats(
    logits: torch.Tensor,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    forbid: int | None = None,
) -> PositionStats:
    """Entropy, confidence, margin and the chosen token for every position of `logits` [B, G, V].

    Everything is computed on the logits' device. A sample with a `generator` on another device
    (the runner seeds a CPU generator) is drawn there, from the tempered probabilities moved over,
    so a seed gives the same tokens whatever device the model runs on.

    forbid: a token id that is never chosen (the sampler passes the mask id: committing a mask
    would leave the position masked, and the loop would never end). Where the argmax or the
    sample is that id, the best other token (or a sample with that id's mass removed) is taken
    instead; every other position, and the entropy and margin, are unchanged.
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
    if forbid is not None and bool((greedy == forbid).any()):
        allowed = logits.float().index_fill(-1, torch.tensor([forbid], device=logits.device), NEG)
        greedy = torch.where(greedy == forbid, allowed.argmax(-1), greedy)
    token = greedy
    if temperature > 0:
        tempered = torch.softmax(logits.float() / temperature, dim=-1)
        flat = tempered.reshape(-1, tempered.shape[-1])
        if generator is not None and generator.device != flat.device:
            flat = flat.to(generator.device)
        drawn = torch.multinomial(flat, 1, generator=generator).squeeze(1)
        if forbid is not None:
            bad = (drawn == forbid).nonzero().squeeze(1)
            if len(bad):
                again = flat[bad].index_fill(-1, torch.tensor([forbid], device=flat.device), 0.0)
                # A position with all its mass on the forbidden id falls back to the argmax.
                fallback = greedy.reshape(-1)[bad.to(greedy.device)].to(flat.device)
                ok = again.sum(-1) > 0
                again[~ok] = 1.0
                pick = torch.multinomial(again, 1, generator=generator).squeeze(1)
                drawn[bad] = torch.where(ok, pick, fallback)
        token = drawn.view(greedy.shape).to(logits.device)
    logprob = logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)
    return PositionStats(
        token=token,
        logprob=logprob,
        entropy=entropy,
        confidence=logprob.exp(),
        margin=top1 - top2,
        greedy=greedy,
    )
