"""The EB-sampler's rule (Ben-Hamu et al. 2025) as a decoder policy.

Candidates are taken in entropy order while the sum of the added positions' entropies minus the
largest of them stays within `lam`. The sum minus the max bounds the error of committing the set
together (the KL between the joint and the product of marginals) more tightly than the sum alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.registry import register
from nclb.sampler.policy import BUDGET, Decoder, StepView
from nclb.schema import setting


@register("decoder", "eb")
@dataclass
class EB(Decoder):
    """Entropy order; add positions while sum(entropy) - max(entropy) <= lam (>= 1 per step)."""

    lam: float = setting(0.2, BUDGET, key="lam")
    name: str = "eb"

    def kl_unsupported(self) -> str | None:
        """None: each step's set is chosen from the state's entropies alone."""
        return None

    def select(self, view: StepView) -> torch.Tensor:
        """The entropy-ordered prefix within the budget."""
        ent = view.stats.entropy.float().masked_fill(~view.candidates, float("inf"))
        order = ent.argsort(dim=1, stable=True)
        ranked = ent.gather(1, order)
        # In ascending order the max of a prefix is its last entry, so sum - max of the prefix
        # ending at position m is the sum of the entropies before m: an exclusive running sum
        # (never a difference, which cancels: 1.3e-9 + 0.381 - 0.381 is 0 in float32).
        before = torch.zeros_like(ranked)
        before[:, 1:] = ranked[:, :-1].cumsum(dim=1)
        ok = (before <= self.lam) & torch.isfinite(ranked)
        return torch.zeros_like(ok).scatter(1, order, ok) & view.candidates
