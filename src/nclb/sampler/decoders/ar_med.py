"""AR-MED: MED's entropy test on a left-to-right run of positions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.registry import register
from nclb.sampler.policy import BUDGET, RULES, Decoder, StepView, within_budget
from nclb.schema import OneOf, setting


@register("decoder", "ar_med")
@dataclass
class ARMED(Decoder):
    """AR-MED: commit the leftmost masked position of the block, then extend to the following
    masked positions, left to right, while they pass the same entropy test as MED (stopping at
    the first that fails)."""

    lam: float = setting(0.2, BUDGET, key="lam")
    rule: str = setting("per_position", OneOf(options=RULES))
    name: str = "ar_med"

    def kl_unsupported(self) -> str | None:
        """None: each step's set is chosen from the state's entropies alone."""
        return None

    def select(self, view: StepView) -> torch.Tensor:
        """Left-to-right commit run within the entropy budget."""
        ent = view.stats.entropy.float().masked_fill(~view.candidates, float("inf"))
        g = ent.shape[1]
        pos = torch.arange(g, device=ent.device).expand_as(ent)
        order = pos.masked_fill(~view.candidates, g).argsort(dim=1, stable=True)
        ok = within_budget(ent.gather(1, order), self.lam, self.rule).cumprod(dim=1).bool()
        return torch.zeros_like(ok).scatter(1, order, ok) & view.candidates
