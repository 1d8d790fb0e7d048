"""MED: multi-token entropy decoding (the paper's decoder)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.registry import register
from nclb.sampler.policy import BUDGET, RULES, Decoder, StepView, within_budget
from nclb.schema import OneOf, setting


@register("decoder", "med")
@dataclass
class MED(Decoder):
    """Multi-token entropy decoding: the lowest-entropy position, plus others under `lam`.

    rule=per_position adds every candidate with entropy < lam; rule=cumulative adds candidates
    in entropy order while the running entropy sum stays < lam (EB-sampler style).
    """

    lam: float = setting(0.2, BUDGET, key="lam")
    rule: str = setting("per_position", OneOf(options=RULES))
    name: str = "med"

    def kl_unsupported(self) -> str | None:
        """None: each step's set is chosen from the state's entropies alone."""
        return None

    def select(self, view: StepView) -> torch.Tensor:
        """Entropy-ordered commit set within the entropy budget."""
        ent = view.stats.entropy.float().masked_fill(~view.candidates, float("inf"))
        order = ent.argsort(dim=1, stable=True)
        ok = within_budget(ent.gather(1, order), self.lam, self.rule)
        return torch.zeros_like(ok).scatter(1, order, ok) & view.candidates
