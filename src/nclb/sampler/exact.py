"""Exact output distributions of a decoder on an oracle model, by enumeration.

Valid for policies whose choice of positions does not depend on the sampled tokens (entropy,
margin and left-to-right orders, MED, AR-MED): then the probability that the sampler outputs x
is the product, over its steps, of the model's conditionals of x at the committed positions.
"""

from __future__ import annotations

import torch

from nclb.models.oracle import OracleModel
from nclb.sampler.decoders import Decoder, StepView
from nclb.sampler.loop import active_window
from nclb.sampler.stats import position_stats


@torch.no_grad()
def sampler_probabilities(model: OracleModel, decoder: Decoder, block: int) -> torch.Tensor:
    """q(x) for every sequence x of the oracle (same order as model.sequences), float64."""
    targets = model.sequences
    n, length = targets.shape
    state = torch.full_like(targets, model.mask_id)
    logq = torch.zeros(n, dtype=torch.float64)
    block_index = torch.full((n,), -1, dtype=torch.long)
    block_step = torch.zeros(n, dtype=torch.long)
    block_masked = torch.zeros(n, dtype=torch.long)
    while (state == model.mask_id).any():
        masked = state == model.mask_id
        cond = model.conditionals(state)
        stats = position_stats(model.logits(state)[:, -length:])
        index, window = active_window(masked, block)
        moved = index != block_index
        block_index = index
        block_step = torch.where(moved, 0, block_step)
        block_masked = torch.where(moved, (masked & window).sum(1), block_masked)
        view = StepView(masked & window, stats, block_step, block_masked, block)
        chosen = decoder.select(view) & masked & window
        picked = cond.gather(2, targets.unsqueeze(-1)).squeeze(-1)
        logq += torch.where(chosen, picked.clamp(min=1e-300).log(), 0.0).sum(1)
        state = torch.where(chosen, targets, state)
        block_step += 1
    return logq.exp()
