"""Confidence-threshold decoding (Fast-dLLM style)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.registry import register
from nclb.sampler.policy import Decoder, StepView, first_always, order_score
from nclb.schema import PROBABILITY, setting


@register("decoder", "threshold")
@dataclass
class Threshold(Decoder):
    """Fast-dLLM style: commit every candidate whose confidence exceeds `tau` (at least one)."""

    tau: float = setting(0.9, PROBABILITY)
    name: str = "threshold"

    def kl_unsupported(self) -> str | None:
        """Not re-scorable: the commit set depends on the sampled tokens."""
        return "decoder=threshold commits by the sampled token's probability"

    def select(self, view: StepView) -> torch.Tensor:
        """Confident candidates, or the single most confident one."""
        score = order_score(view, "confidence")
        return (view.stats.confidence > self.tau) & view.candidates | first_always(score)
