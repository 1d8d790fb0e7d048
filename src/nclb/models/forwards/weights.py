"""A checkpoint's weights for nclb's own forward, looked up by the released parameter names.

The tensors are the loaded model's own (state_dict shares their storage), so nothing is
copied and a fully fine-tuned model's updates are seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nclb.errors import UserError


class UnsupportedCheckpoint(UserError):
    """A checkpoint nclb's own forward cannot serve (a config setting it does not implement,
    or a parameter missing under its released name)."""


@dataclass(frozen=True)
class Linear:
    """y = x W^T (+ b)."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


@dataclass(frozen=True)
class RMSNorm:
    """RMS norm computed in float32, cast back, then scaled (and shifted) in the input dtype,
    as both released codes do."""

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        if self.weight is not None:
            y = self.weight * y
        return y if self.bias is None else y + self.bias


@dataclass(frozen=True)
class Block:
    """One pre-norm block: attention (q, k, v, out) and a SiLU-gated MLP (gate, up, down)."""

    attn_norm: RMSNorm
    q: Linear
    k: Linear
    v: Linear
    out: Linear
    mlp_norm: RMSNorm
    gate: Linear
    up: Linear
    down: Linear


@dataclass(frozen=True)
class Shape:
    """The attention geometry and rotary settings.

    rope_full_precision: rotate queries and keys in float32 (LLaDA), else in the model dtype
    with float32 angles (Dream).
    """

    heads: int
    kv_heads: int
    head_dim: int
    rope_theta: float
    rope_full_precision: bool


@dataclass(frozen=True)
class TransformerWeights:
    """Everything a forward pass reads: embedding (times embed_scale), blocks, final norm and
    head (logits times logit_scale)."""

    shape: Shape
    embed: torch.Tensor
    blocks: list[Block]
    final_norm: RMSNorm
    head: Linear
    embed_scale: float = 1.0
    logit_scale: float = 1.0


class Named:
    """The tensors of a state dict, fetched by name; a missing required one is an
    UnsupportedCheckpoint naming it."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], family: str) -> None:
        self.tensors = tensors
        self.family = family

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor called `name`."""
        if name not in self.tensors:
            raise UnsupportedCheckpoint(
                f"the {self.family} checkpoint has no parameter {name!r} (nclb's own forward "
                "reads the released parameter names; merge any adapters into the weights)"
            )
        return self.tensors[name]

    def optional(self, name: str) -> torch.Tensor | None:
        """The tensor called `name`, or None where the checkpoint has none (e.g. no bias)."""
        return self.tensors.get(name)

    def linear(self, prefix: str) -> Linear:
        """`prefix`.weight and, where present, `prefix`.bias."""
        return Linear(self.tensor(f"{prefix}.weight"), self.optional(f"{prefix}.bias"))

    def norm(self, prefix: str, eps: float, affine: bool = True) -> RMSNorm:
        """An RMS norm: `prefix`.weight (required when `affine`), `prefix`.bias where present."""
        weight = self.tensor(f"{prefix}.weight") if affine else None
        return RMSNorm(weight, self.optional(f"{prefix}.bias"), eps)
