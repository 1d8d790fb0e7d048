"""k-token decoding: a fixed number of positions a step, in a chosen order."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.registry import register
from nclb.sampler.policy import ORDERS, Decoder, StepView, order_score, top_k_mask
from nclb.schema import Integer, OneOf, setting


@register("decoder", "ktoken")
@dataclass
class KToken(Decoder):
    """Commit the k best positions of the active block per step, ranked by `order`."""

    k: int = setting(1, Integer(min=1), key="k")
    order: str = setting("entropy", OneOf(options=ORDERS))
    name: str = "ktoken"

    def kl_unsupported(self) -> str | None:
        """Re-scorable unless positions are ranked by the sampled token's probability."""
        if self.order == "confidence":
            return "decoder.order=confidence ranks positions by the sampled token's probability"
        return None

    def select(self, view: StepView) -> torch.Tensor:
        """The k best candidates per row."""
        rows, device = view.candidates.shape[0], view.candidates.device
        k = torch.full((rows,), self.k, dtype=torch.long, device=device)
        return top_k_mask(order_score(view, self.order), k)
