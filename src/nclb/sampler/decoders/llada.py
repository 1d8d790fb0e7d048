"""LLaDA's reference schedule: a fixed number of steps per block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nclb.errors import UserError
from nclb.registry import register
from nclb.sampler.policy import Decoder, StepView, order_score, top_k_mask
from nclb.schema import Integer, OneOf, setting

REMASKING = ("low_confidence", "random")


def llada_schedule(masked: torch.Tensor, steps: int) -> torch.Tensor:
    """LLaDA's per-step token counts for a block with `masked` [B] masks over `steps` steps:
    masked // steps each, and one more in the first masked % steps steps. Returns [B, steps]."""
    base = (masked // steps).unsqueeze(1)
    steps_ = torch.arange(steps, device=masked.device).unsqueeze(0)
    extra = (steps_ < (masked % steps).unsqueeze(1)).long()
    return base + extra


@register("decoder", "llada")
@dataclass
class LLaDA(Decoder):
    """LLaDA's reference scheme: `steps_per_block` steps per block, each committing the number
    of tokens given by `llada_schedule`, chosen by low_confidence (p of the chosen token) or
    random remasking. The loop moves to the next block once a block is full, so passes that
    LLaDA's reference spends on an already-full block are not made (same tokens, fewer NFE)."""

    steps_per_block: int = setting(32, Integer(min=1, meaning="steps per block"))
    remasking: str = setting("low_confidence", OneOf(options=REMASKING))
    name: str = "llada"

    @classmethod
    def config_params(cls, params: dict[str, Any], gen_length: int, block: int) -> dict[str, Any]:
        """The YAML's `steps` (total, null = gen_length) as steps_per_block; a UserError when
        the steps do not split evenly over the blocks."""
        params = dict(params)
        blocks = -(-gen_length // block)
        steps = Integer(min=1, nullable=True).check("decoder.steps", params.pop("steps"))
        steps = steps or gen_length
        if steps % blocks:
            raise UserError(
                f"decoder.steps={steps} must be a multiple of the number of blocks ({blocks} = "
                f"gen_length {gen_length} / block {block})"
            )
        params["steps_per_block"] = steps // blocks
        return params

    def kl_unsupported(self) -> str | None:
        """Re-scorable with random remasking only."""
        if self.remasking == "random":
            return None
        return "decoder.remasking=low_confidence ranks positions by the sampled token's probability"

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
