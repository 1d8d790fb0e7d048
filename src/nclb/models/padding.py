"""Left padding: rows of [pad.. prompt region] ids with the bool attention mask every MaskedLM
takes (True on real tokens), so that each row's region starts at the same column."""

from __future__ import annotations

import torch


def left_pad(
    prompts: list[list[int]], regions: list[list[int]], pad_id: int, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """ids [B, N] and attention mask [B, N] of the rows prompt + region, each prompt padded on
    the left to `width` (default: the longest prompt); returns the width too."""
    width = max(len(p) for p in prompts) if width is None else width
    rows, masks = [], []
    for prompt, region in zip(prompts, regions, strict=True):
        pad = width - len(prompt)
        rows.append([pad_id] * pad + list(prompt) + list(region))
        masks.append([False] * pad + [True] * (len(prompt) + len(region)))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.bool), width
