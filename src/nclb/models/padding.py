"""Left padding: rows of [pad.. prompt region] ids with the bool attention mask every MaskedLM
takes (True on real tokens), so that each row's region starts at the same column; and what a
model that masks padding makes of that mask (pairwise attention mask, positions counted from
the first real token)."""

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


def pairwise_mask(real: torch.Tensor) -> torch.Tensor:
    """Bool [B, 1, N, N] from a padding mask [B, N]: every row attends to the real tokens only.

    Padded rows also attend to themselves, so no row is fully masked (which would give NaN in
    some attention kernels); real rows never see padding either way.
    """
    n = real.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=real.device)
    return (real[:, None, None, :] | eye).expand(-1, 1, n, n)


def padded_positions(real: torch.Tensor) -> torch.Tensor:
    """Position ids [B, N] that start at 0 on each row's first real token (0 on padding)."""
    return (real.long().cumsum(-1) - 1).clamp(min=0)
