"""nclb's own forwards of checkpoint families, over a key/value cache (nclb.models.kvcache).

Each builder takes a loaded transformers model and returns a CachedForward that reads the
model's own weights by their released parameter names; a Family names its builder here
(`Family.forward` in nclb.models.hf). A builder raises UnsupportedCheckpoint for a checkpoint
it cannot serve.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import PreTrainedModel

from nclb.models.forwards.dream import dream_forward
from nclb.models.forwards.llada import llada_forward
from nclb.models.forwards.tiny import tiny_forward
from nclb.models.forwards.weights import UnsupportedCheckpoint
from nclb.models.kvcache import CachedForward

BUILDERS: dict[str, Callable[[PreTrainedModel], CachedForward]] = {
    "llada": llada_forward,
    "dream": dream_forward,
    "tiny": tiny_forward,
}


def build_forward(name: str, model: PreTrainedModel) -> CachedForward:
    """The forward `name` in BUILDERS over `model` (UnsupportedCheckpoint if it cannot serve
    the checkpoint)."""
    return BUILDERS[name](model)


__all__ = ["BUILDERS", "UnsupportedCheckpoint", "build_forward"]
