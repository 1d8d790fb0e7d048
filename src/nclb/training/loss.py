"""The MDLM loss (masked diffusion): per sequence a mask ratio t ~ U(eps, t_max), stratified
over the batch; every maskable position is masked with probability t; the cross-entropy on the
masked positions is weighted by 1/t, summed, and divided by the number of maskable positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def draw_masks(
    ids: torch.Tensor,
    maskable: torch.Tensor,
    eps: float,
    gen: torch.Generator | None,
    t_max: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t [B], masked [B, N]): a stratified mask ratio per row and the positions it masks,
    drawn from `gen` on the device of `ids`."""
    b, dev = ids.shape[0], ids.device
    u = (torch.arange(b, device=dev) + torch.rand(b, generator=gen, device=dev)) / b
    t = eps + (t_max - eps) * u[torch.randperm(b, generator=gen, device=dev)]
    masked = (torch.rand(ids.shape, generator=gen, device=dev) < t[:, None]) & maskable
    return t, masked


def weighted_masked_ce(
    logits: torch.Tensor, ids: torch.Tensor, masked: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The sum over masked positions of cross-entropy / t (logits on any device; ids, masked
    and t are moved to it)."""
    device = logits.device
    masked_d = masked.to(device)
    ce = F.cross_entropy(logits[masked_d].float(), ids.to(device)[masked_d], reduction="none")
    weights = (1.0 / t)[:, None].expand_as(ids)[masked].to(device)
    return (ce * weights).sum()
