"""The learning-rate schedule and optimizer step of `nclb train` and `nclb finetune`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch


def lr_factor(progress: float, warmup_frac: float, min_ratio: float) -> float:
    """Linear warmup over the first `warmup_frac` of training, then cosine down to `min_ratio`."""
    if progress < warmup_frac:
        return progress / warmup_frac
    done = min(1.0, (progress - warmup_frac) / max(1e-9, 1 - warmup_frac))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * done))


class ScheduledAdamW:
    """AdamW under `lr_factor`'s schedule with gradient-norm clipping: the optimizer step of
    `nclb train` and `nclb finetune`."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        optim: Mapping[str, Any],
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.peak = float(optim["lr"])
        self.warmup, self.floor = float(optim["warmup_frac"]), float(optim["min_lr_ratio"])
        self.grad_clip = float(optim["grad_clip"])
        self.opt = torch.optim.AdamW(
            self.params, lr=self.peak, betas=betas, weight_decay=float(optim["weight_decay"])
        )

    @property
    def lr(self) -> float:
        """The learning rate of the last step."""
        return self.opt.param_groups[0]["lr"]

    def step(self, progress: float, backward: Callable[[], None]) -> None:
        """Set the learning rate for `progress` (0..1 of training), clear the gradients, run
        `backward` (the loss's backward passes), clip the gradient norm and step."""
        for group in self.opt.param_groups:
            group["lr"] = self.peak * lr_factor(progress, self.warmup, self.floor)
        self.opt.zero_grad(set_to_none=True)
        backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
