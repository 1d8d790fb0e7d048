"""Scoring filled regions under a masked LM: one forward pass per region state, batched, with a
caller's reduction of each row's region log-probs (answer likelihoods, KL estimates, lm-eval
log-likelihoods)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from nclb.models.base import MaskedLM
from nclb.models.padding import left_pad


def region_apply(
    model: MaskedLM,
    prompts: Sequence[list[int]],
    regions: Sequence[list[int]],
    reduce: Callable[[int, torch.Tensor], Any],
    batch_size: int = 32,
    temperature: float = 1.0,
) -> list[Any]:
    """For each (prompt, region) row, one forward pass and `reduce(row, logp)` on its region's
    log-probs [G, V] (log-softmax of logits / temperature). Rows of one batch share a region
    length; models that cannot pad (LLaDA) get batches of equal prompt length only."""
    order = list(range(len(prompts)))
    if not model.supports_padding:
        order.sort(key=lambda i: (len(regions[i]), len(prompts[i])))
    else:
        order.sort(key=lambda i: len(regions[i]))
    out: list[Any] = [None] * len(prompts)
    start = 0
    while start < len(order):
        first = order[start]
        chunk = [first]
        for i in order[start + 1 : start + batch_size]:
            same_region = len(regions[i]) == len(regions[first])
            same_prompt = len(prompts[i]) == len(prompts[first])
            if not same_region or not (model.supports_padding or same_prompt):
                break
            chunk.append(i)
        ids, attn, width = left_pad(
            [list(prompts[i]) for i in chunk], [list(regions[i]) for i in chunk], model.pad_id
        )
        with torch.no_grad():
            logits = model.logits(ids.to(model.device), attn.to(model.device))[:, width:]
            logp = torch.log_softmax(logits.float() / temperature, dim=-1)
        for j, i in enumerate(chunk):
            out[i] = reduce(i, logp[j])
        start += len(chunk)
    return out
