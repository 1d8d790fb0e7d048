"""Training batches: left-padded prompt + region rows with the positions the loss may mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nclb.models.padding import left_pad


def left_pad_targets(
    prompts: Sequence[list[int]],
    regions: Sequence[list[int]],
    targets: Sequence[list[bool]],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids [B, N], attention mask [B, N] and maskable positions [B, N] (a region position
    whose target flag is set; never padding or prompt)."""
    ids, attn, width = left_pad(list(prompts), list(regions), pad_id)
    maskable = [[False] * width + list(flags) for flags in targets]
    return ids, attn, torch.tensor(maskable, dtype=torch.bool)
