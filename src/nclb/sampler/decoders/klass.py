"""A KLASS-style decoder: commit what the last two forward passes agree on.

A candidate is committed when its predictive distribution has settled (the KL divergence from
the previous pass's distribution at that position is below `kl`) and it is confident (its most
likely token has p > `tau`); the lowest-entropy candidate is always committed, so every step
progresses. On a row's first pass there is no previous distribution, so only that one is.
The loop keeps the previous pass's log-probabilities ([rows, positions, vocabulary]) only for
decoders that ask (`needs_previous`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from nclb.registry import register
from nclb.sampler.policy import Decoder, StepView, first_always, order_score
from nclb.schema import PROBABILITY, Number, setting


@register("decoder", "klass")
@dataclass
class KLASS(Decoder):
    """Stable (KL to the previous pass < kl) and confident (top p > tau) candidates, >= 1 a step."""

    kl: float = setting(0.01, Number(meaning="nats"))
    tau: float = setting(0.9, PROBABILITY)
    name: str = "klass"
    needs_previous: ClassVar[bool] = True

    def select(self, view: StepView) -> torch.Tensor:
        """Settled, confident candidates, or the single lowest-entropy one."""
        settled = (view.kl_previous < self.kl) & (view.stats.top1 > self.tau)
        return settled & view.candidates | first_always(order_score(view, "entropy"))
