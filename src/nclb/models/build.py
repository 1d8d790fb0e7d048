"""A model from its config: the registered family (model.family, else model.name) builds it."""

from __future__ import annotations

from nclb.models.base import MaskedLM
from nclb.registry import lookup
from nclb.tasks.base import Example, Task


def build_model(cfg: dict, task: Task, examples: list[Example], gen_length: int) -> MaskedLM:
    """The model `cfg` describes. The reference model needs the task and its examples."""
    return lookup("model", cfg.get("family") or cfg.get("name"))(cfg, task, examples, gen_length)
