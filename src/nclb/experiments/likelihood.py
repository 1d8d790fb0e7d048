"""Scoring filled regions under a masked LM: batched forward passes over many region states,
and the answer log-likelihood log p(a | c, r) used by posterior traces and partial-trace scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nclb.models.base import MaskedLM
from nclb.models.scoring import region_apply
from nclb.schema import OneOf

ANSWER_SCORES = ("marginal", "chain")


def answer_states(region: list[int], span: tuple[int, int], mask_id: int, mode: str):
    """The region states that score the answer block `span` of `region`, as (state, positions).

    marginal: one state with the whole answer block masked; every answer token is scored from
    it (the product of the block's per-position conditionals, one forward pass).
    chain: one state per answer position, left to right, the positions before it revealed
    (the chain rule, exact under the model's conditionals; one pass per answer token).
    """
    OneOf(options=ANSWER_SCORES).check("answer_score", mode)
    start, end = span
    if mode == "marginal":
        state = list(region)
        state[start:end] = [mask_id] * (end - start)
        return [(state, list(range(start, end)))]
    states = []
    for pos in range(start, end):
        state = list(region)
        state[pos:end] = [mask_id] * (end - pos)
        states.append((state, [pos]))
    return states


def answer_logprobs(
    model: MaskedLM,
    prompts: Sequence[list[int]],
    regions: Sequence[list[int]],
    spans: Sequence[tuple[int, int]],
    mode: str = "marginal",
    batch_size: int = 32,
) -> list[list[float]]:
    """Per-token log p(a_j | c, r) of the answer block of each region (the answer tokens are
    the ones in `regions` at `spans`; other masked positions stay masked). Sum for log p(a|c,r)."""
    prompts_, states, owners, positions = [], [], [], []
    for row, (prompt, region, span) in enumerate(zip(prompts, regions, spans, strict=True)):
        if any(tok == model.mask_id for tok in region[span[0] : span[1]]):
            raise ValueError(f"row {row}: the answer block to score holds mask tokens")
        for state, pos in answer_states(list(region), span, model.mask_id, mode):
            prompts_.append(prompt)
            states.append(state)
            owners.append(row)
            positions.append(pos)

    def reduce(i: int, logp: torch.Tensor) -> list[float]:
        pos = torch.tensor(positions[i], device=logp.device)
        targets = torch.tensor([regions[owners[i]][p] for p in positions[i]], device=logp.device)
        return logp[pos, targets].double().cpu().tolist()

    scored = region_apply(model, prompts_, states, reduce, batch_size)
    out: list[list[float]] = [[] for _ in prompts]
    for i, values in enumerate(scored):
        out[owners[i]].extend(values)
    return out
