"""What every decoder policy shares: the step view it reads, the Decoder protocol, ranking
helpers, and building a registered decoder from its parameters.

Every policy sees a `StepView` and returns a bool mask [B, G] that is a subset of
`view.candidates` (the masked positions inside each row's active block). The loop guarantees
that every row passed in has at least one candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from nclb.errors import UserError
from nclb.registry import lookup
from nclb.sampler.stats import PositionStats

NEG = float("-inf")


@dataclass
class StepView:
    """What a decoder sees at one step, for the rows still decoding.

    candidates: bool [B, G], masked positions inside the active block.
    stats: per-position statistics from this step's forward pass.
    block_step: long [B], forward passes already spent in the current block.
    block_masked: long [B], masked positions in the current block when it became active.
    generator: random source for random orders when `uniform` is None.
    uniform: gives uniform numbers [B, G] in (0, 1) for random orders, from each row's own
        random stream (the sampler loop's; see nclb.sampler.streams).

    Filled for the decoders that ask (a revoking decoder has a `revoke` method; one with
    `needs_previous` compares consecutive passes):
    region: long [B, G], the tokens in place when this pass was made (mask ids where masked).
    fresh: bool [B, G], positions committed at the previous step (still in place).
    revocable: bool [B, G], committed (not pre-filled) positions below the revocation limit.
    current_logprob: [B, G], log p(the token in place) under this pass (-inf where masked).
    kl_previous: [B, G], KL(this pass || the previous pass) per position (inf where the
        previous pass is missing: the row's first pass).
    """

    candidates: torch.Tensor
    stats: PositionStats
    block_step: torch.Tensor
    block_masked: torch.Tensor
    generator: torch.Generator | None = None
    uniform: Callable[[], torch.Tensor] | None = None
    region: torch.Tensor | None = None
    fresh: torch.Tensor | None = None
    revocable: torch.Tensor | None = None
    current_logprob: torch.Tensor | None = None
    kl_previous: torch.Tensor | None = None

    def random(self) -> torch.Tensor:
        """Uniform numbers [B, G] on the candidates' device, one per position."""
        if self.uniform is not None:
            return self.uniform()
        shape, device = self.candidates.shape, self.candidates.device
        if self.generator is None:
            return torch.rand(shape, device=device)
        return torch.rand(shape, generator=self.generator, device=self.generator.device).to(device)


class Decoder(Protocol):
    """A policy over the sampler loop (the decoders in nclb.sampler.decoders, one a file)."""

    name: str

    def validate(self) -> None:
        """Raise UserError naming the key when a parameter is out of range."""
        ...

    def select(self, view: StepView) -> torch.Tensor:
        """Bool mask [B, G] of positions to commit this step (a subset of view.candidates)."""
        ...


def order_score(view: StepView, order: str) -> torch.Tensor:
    """Higher = commit earlier. Non-candidates get -inf."""
    s = view.stats
    if order == "entropy":
        score = -s.entropy
    elif order == "confidence":
        score = s.confidence
    elif order == "margin":
        score = s.margin
    elif order == "left_to_right":
        g = view.candidates.shape[1]
        positions = torch.arange(g, dtype=torch.float32, device=view.candidates.device)
        score = -positions.expand_as(view.candidates)
    elif order == "random":
        score = view.random()
    else:
        raise UserError(f"decoder.order={order!r} is not one of {ORDERS}")
    return score.float().masked_fill(~view.candidates, NEG)


def top_k_mask(score: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Bool mask of the k[b] highest finite scores in each row (ties broken by position)."""
    rank = score.argsort(dim=1, descending=True, stable=True).argsort(dim=1, stable=True)
    return (rank < k.unsqueeze(1)) & torch.isfinite(score)


def first_always(score: torch.Tensor) -> torch.Tensor:
    """Bool mask of the single best position per row."""
    return top_k_mask(score, torch.ones(score.shape[0], dtype=torch.long, device=score.device))


ORDERS = ("entropy", "confidence", "margin", "random", "left_to_right")
RULES = ("per_position", "cumulative")


def check_budget(lam: float, rule: str) -> None:
    """A UserError naming the key when an entropy budget (lam, rule) is out of range."""
    if not (isinstance(lam, int | float) and lam >= 0):
        raise UserError(f"lam={lam!r} must be a number >= 0 (an entropy in nats)")
    if rule not in RULES:
        raise UserError(f"decoder.rule={rule!r} must be one of {list(RULES)}")


def within_budget(sorted_entropy: torch.Tensor, lam: float, rule: str) -> torch.Tensor:
    """For entropies listed in commit order [B, G] (inf for non-candidates): which pass `lam`.

    per_position: every position with entropy < lam. cumulative: the prefix whose running
    entropy sum stays < lam. The first position always passes.
    """
    if rule == "per_position":
        ok = sorted_entropy < lam
    elif rule == "cumulative":
        ok = sorted_entropy.cumsum(dim=1) < lam
    else:
        raise UserError(f"decoder.rule={rule!r} is not one of {RULES}")
    ok[:, 0] = torch.isfinite(sorted_entropy[:, 0])
    return ok


def build_decoder(decoder: str | type[Decoder], **params: Any) -> Decoder:
    """The registered decoder called `decoder` (or that decoder class, already looked up) with
    its parameters, validated."""
    built = (lookup("decoder", decoder) if isinstance(decoder, str) else decoder)(**params)
    built.validate()
    return built


def config_params(
    decoder: type[Decoder], params: dict[str, Any], gen_length: int, block: int
) -> dict:
    """A decoder class's constructor parameters from its config keys: the decoder's own
    `config_params` (e.g. LLaDA's steps -> steps_per_block), else the keys unchanged."""
    convert = getattr(decoder, "config_params", None)
    return convert(params, gen_length, block) if convert else params
