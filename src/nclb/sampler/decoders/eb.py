"""The EB-sampler's rule (Ben-Hamu et al. 2025) as a decoder policy.

Candidates are taken in entropy order while the sum of the added positions' entropies minus the
largest of them stays within `lam`. The sum minus the max bounds the error of committing the set
together (the KL between the joint and the product of marginals) more tightly than the sum alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.registry import register
from nclb.sampler.policy import BUDGET, StepView
from nclb.schema import check_fields, setting


@register("decoder", "eb")
@dataclass
class EB:
    """Entropy order; add positions while sum(entropy) - max(entropy) <= lam (>= 1 per step)."""

    lam: float = setting(0.2, BUDGET, key="lam")
    name: str = "eb"

    def validate(self) -> None:
        """Raise UserError naming the key when a field is out of its bound."""
        check_fields(self, "decoder.")

    def select(self, view: StepView) -> torch.Tensor:
        """The entropy-ordered prefix within the budget."""
        ent = view.stats.entropy.float().masked_fill(~view.candidates, float("inf"))
        order = ent.argsort(dim=1, stable=True)
        ranked = ent.gather(1, order)
        # In ascending order the max of a prefix is its last entry, so sum - max of the prefix
        # ending at position m is the sum of the entropies before m.
        before = ranked.cumsum(dim=1) - ranked
        ok = (before <= self.lam) & torch.isfinite(ranked)
        ok[:, 0] = torch.isfinite(ranked[:, 0])
        return torch.zeros_like(ok).scatter(1, order, ok) & view.candidates
