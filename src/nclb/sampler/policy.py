"""What every decoder policy shares: the step view it reads, the Decoder protocol, ranking
helpers, and building a registered decoder from its parameters.

Every policy sees a `StepView` and returns a bool mask [B, G] that is a subset of
`view.candidates` (the masked positions inside each row's active block). The loop guarantees
that every row passed in has at least one candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nclb.errors import UserError
from nclb.registry import lookup
from nclb.sampler.stats import PositionStats
from nclb.schema import Number, check_fields

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


class Decoder:
    """The base of every decoder policy (nclb.sampler.decoders, one a file; plugins too).

    A decoder implements `select` and declares, by overriding these defaults, everything else
    the loop and the metrics ask of it (they probe nothing):

    validate(): raise UserError naming the key when a parameter is out of range (default: each
        field's declared bound, `nclb.schema.setting`, checked as `decoder.<field>`).
    revokes / revoke(view): whether the decoder takes committed tokens back, and which (default:
        it never does; the loop then skips the look-back work). `max_revocations` bounds how
        often one position may be taken back.
    needs_previous: the loop keeps the previous pass's log-probabilities and fills
        `view.kl_previous` (KLASS).
    scores_region: the decoder reads statistics outside the active block (a revoking decoder
        scores visible tokens), so a cached pass must compute the whole region (default: when
        it revokes or compares passes).
    kl_unsupported(): why the KL estimators cannot re-score this decoder's commits, None when
        they can (each step's set chosen from the state alone, every token drawn from its
        marginal, never taken back). Default: a reason; a decoder that qualifies says so.
    config_params(params, gen_length, block): the constructor's parameters from the config keys
        (default: unchanged; LLaDA turns its total `steps` into steps per block).
    """

    name: str = "decoder"
    revokes: ClassVar[bool] = False
    needs_previous: ClassVar[bool] = False
    max_revocations: int = 0

    def validate(self) -> None:
        """Raise UserError naming the key when a field is out of the bound it declares
        (`nclb.schema.setting`); a decoder with other checks extends this."""
        check_fields(self, "decoder.")

    def select(self, view: StepView) -> torch.Tensor:
        """Bool mask [B, G] of positions to commit this step (a subset of view.candidates)."""
        raise NotImplementedError(f"decoder {self.name} does not define select()")

    def revoke(self, view: StepView) -> torch.Tensor:
        """Bool [B, G]: committed positions to mask again this pass (default: none)."""
        return torch.zeros_like(view.candidates)

    @property
    def scores_region(self) -> bool:
        """Whether the decoder reads statistics outside the active block."""
        return self.revokes or self.needs_previous

    def kl_unsupported(self) -> str | None:
        """Why the KL estimators cannot re-score this decoder (None when they can)."""
        return f"decoder={self.name} chooses (or takes back) positions by more than the state's entropies"

    @classmethod
    def config_params(cls, params: dict[str, Any], gen_length: int, block: int) -> dict[str, Any]:
        """The constructor's parameters from the decoder's config keys (default: unchanged)."""
        return params


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


# The bound of an entropy budget (`lam` of med, ar_med, eb, verify).
BUDGET = Number(meaning="an entropy in nats")


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


def decoder_class(name: str) -> type[Decoder]:
    """The registered decoder class called `name`; a UserError when it is not a Decoder."""
    cls = lookup("decoder", name)
    if not (isinstance(cls, type) and issubclass(cls, Decoder)):
        raise UserError(
            f"decoder={name} is registered but does not subclass nclb.sampler.Decoder; "
            "derive it from Decoder (docs/extending.md)"
        )
    return cls


def build_decoder(name: str, **params: Any) -> Decoder:
    """The registered decoder called `name` with its parameters, validated."""
    decoder = decoder_class(name)(**params)
    decoder.validate()
    return decoder


def config_params(name: str, params: dict[str, Any], gen_length: int, block: int) -> dict:
    """A decoder's constructor parameters from its config keys (Decoder.config_params)."""
    return decoder_class(name).config_params(params, gen_length, block)
