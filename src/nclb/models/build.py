"""A model from its config: the registered family (model.family, else model.name) builds it."""

from __future__ import annotations

from nclb.models.base import MaskedLM
from nclb.registry import lookup
from nclb.types import ModelContext


def build_model(cfg: dict, context: ModelContext) -> MaskedLM:
    """The model `cfg` describes, for the run `context` describes (the task it runs on; the
    reference model also learns the examples' reference outputs from it)."""
    return lookup("model", cfg.get("family") or cfg.get("name"))(cfg, context)
