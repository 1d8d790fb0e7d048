"""The learning-rate schedule of `nclb train` and `nclb finetune`."""

from __future__ import annotations

import math


def lr_factor(progress: float, warmup_frac: float, min_ratio: float) -> float:
    """Linear warmup over the first `warmup_frac` of training, then cosine down to `min_ratio`."""
    if progress < warmup_frac:
        return progress / warmup_frac
    done = min(1.0, (progress - warmup_frac) / max(1e-9, 1 - warmup_frac))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * done))
