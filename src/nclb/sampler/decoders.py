"""Decoder policies: given one step's statistics, which masked positions to commit.

Every policy sees a `StepView` and returns a bool mask [B, G] that is a subset of
`view.candidates` (the masked positions inside each row's active block). The loop guarantees
that every row passed in has at least one candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from nclb.errors import UserError
from nclb.sampler.stats import PositionStats

NEG = float("-inf")


@dataclass
class StepView:
    """What a decoder sees at one step, for the rows still decoding.

    candidates: bool [B, G], masked positions inside the active block.
    stats: per-position statistics from this step's forward pass.
    block_step: long [B], forward passes already spent in the current block.
    block_masked: long [B], masked positions in the current block when it became active.
    block_size: the window size in positions.
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
    block_size: int
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
    """A policy over the sampler loop."""

    name: str

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


@dataclass
class KToken:
    """Commit the k best positions of the active block per step, ranked by `order`."""

    k: int = 1
    order: str = "entropy"
    name: str = "ktoken"

    def select(self, view: StepView) -> torch.Tensor:
        """The k best candidates per row."""
        rows, device = view.candidates.shape[0], view.candidates.device
        k = torch.full((rows,), self.k, dtype=torch.long, device=device)
        return top_k_mask(order_score(view, self.order), k)


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


@dataclass
class MED:
    """Multi-token entropy decoding: the lowest-entropy position, plus others under `lam`.

    rule=per_position adds every candidate with entropy < lam; rule=cumulative adds candidates
    in entropy order while the running entropy sum stays < lam (EB-sampler style).
    """

    lam: float = 0.2
    rule: str = "per_position"
    name: str = "med"

    def select(self, view: StepView) -> torch.Tensor:
        """Entropy-ordered commit set within the entropy budget."""
        ent = view.stats.entropy.float().masked_fill(~view.candidates, float("inf"))
        order = ent.argsort(dim=1, stable=True)
        ok = within_budget(ent.gather(1, order), self.lam, self.rule)
        return torch.zeros_like(ok).scatter(1, order, ok) & view.candidates


@dataclass
class ARMED:
    """AR-MED: commit the leftmost masked position of the block, then extend to the following
    masked positions, left to right, while they pass the same entropy test as MED (stopping at
    the first that fails)."""

    lam: float = 0.2
    rule: str = "per_position"
    name: str = "ar_med"

    def select(self, view: StepView) -> torch.Tensor:
        """Left-to-right commit run within the entropy budget."""
        ent = view.stats.entropy.float().masked_fill(~view.candidates, float("inf"))
        g = ent.shape[1]
        pos = torch.arange(g, device=ent.device).expand_as(ent)
        order = pos.masked_fill(~view.candidates, g).argsort(dim=1, stable=True)
        ok = within_budget(ent.gather(1, order), self.lam, self.rule).cumprod(dim=1).bool()
        return torch.zeros_like(ok).scatter(1, order, ok) & view.candidates


@dataclass
class Threshold:
    """Fast-dLLM style: commit every candidate whose confidence exceeds `tau` (at least one)."""

    tau: float = 0.9
    name: str = "threshold"

    def select(self, view: StepView) -> torch.Tensor:
        """Confident candidates, or the single most confident one."""
        score = order_score(view, "confidence")
        return (view.stats.confidence > self.tau) & view.candidates | first_always(score)


def llada_schedule(masked: torch.Tensor, steps: int) -> torch.Tensor:
    """LLaDA's per-step token counts for a block with `masked` [B] masks over `steps` steps:
    masked // steps each, and one more in the first masked % steps steps. Returns [B, steps]."""
    base = (masked // steps).unsqueeze(1)
    steps_ = torch.arange(steps, device=masked.device).unsqueeze(0)
    extra = (steps_ < (masked % steps).unsqueeze(1)).long()
    return base + extra


@dataclass
class LLaDA:
    """LLaDA's reference scheme: `steps_per_block` steps per block, each committing the number
    of tokens given by `llada_schedule`, chosen by low_confidence (p of the chosen token) or
    random remasking. The loop moves to the next block once a block is full, so passes that
    LLaDA's reference spends on an already-full block are not made (same tokens, fewer NFE)."""

    steps_per_block: int = 32
    remasking: str = "low_confidence"
    name: str = "llada"

    def select(self, view: StepView) -> torch.Tensor:
        """The scheduled number of lowest-remasking-score candidates."""
        if self.remasking not in ("low_confidence", "random"):
            raise UserError(
                f"decoder.remasking={self.remasking!r} is not one of ['low_confidence', 'random']"
            )
        order = "confidence" if self.remasking == "low_confidence" else "random"
        schedule = llada_schedule(view.block_masked, self.steps_per_block)
        step = view.block_step.clamp(max=self.steps_per_block - 1).unsqueeze(1)
        k = schedule.gather(1, step).squeeze(1)
        return top_k_mask(order_score(view, order), k)


def validate_decoder(d: Decoder) -> None:
    """Raise UserError naming the key when a parameter is out of range."""
    if isinstance(d, KToken):
        if not (isinstance(d.k, int) and d.k >= 1):
            raise UserError(f"k={d.k!r} must be an integer >= 1")
        if d.order not in ORDERS:
            raise UserError(f"decoder.order={d.order!r} must be one of {list(ORDERS)}")
    if isinstance(d, MED | ARMED):
        if not (isinstance(d.lam, int | float) and d.lam >= 0):
            raise UserError(f"lam={d.lam!r} must be a number >= 0 (an entropy in nats)")
        if d.rule not in RULES:
            raise UserError(f"decoder.rule={d.rule!r} must be one of {list(RULES)}")
    if isinstance(d, Threshold) and not (0.0 <= d.tau <= 1.0):
        raise UserError(f"decoder.tau={d.tau!r} must be a probability in [0, 1]")
    if isinstance(d, LLaDA):
        if not (isinstance(d.steps_per_block, int) and d.steps_per_block >= 1):
            raise UserError(f"decoder.steps={d.steps_per_block!r} must give >= 1 step per block")
        if d.remasking not in ("low_confidence", "random"):
            raise UserError(
                f"decoder.remasking={d.remasking!r} must be 'low_confidence' or 'random'"
            )
