"""The types every layer shares: an evaluation example, the canvas the sampler fills in, and
what a model factory is given besides its config. This module imports nothing of nclb."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Example:
    """One evaluation item. `gold` is whatever the scorer needs; `meta` is free-form."""

    id: str
    prompt: str
    gold: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Canvas:
    """What the sampler fills in.

    prompt: token ids of the context (never changed by the sampler).
    region: the generation region, length gen_length; `mask_id` where the sampler must
        decide, any other id is pre-filled (prompting-as-infilling).
    answer: (start, end) offsets of the answer block inside `region`, or None.
    """

    prompt: list[int]
    region: list[int]
    answer: tuple[int, int] | None = None


class ReferenceSource(Protocol):
    """Where a model that predicts known outputs (model=reference) learns them: a task with
    reference solutions (nclb.tasks.base.HasReference)."""

    def canvas(self, example: Example, model: Any, gen_length: int) -> Canvas:
        """The example's token layout for `model`."""
        ...

    def reference_output(self, example: Example) -> tuple[str, str | None]:
        """The reference reasoning and answer-block text (None without an answer block)."""
        ...


@dataclass(frozen=True)
class ModelContext:
    """What a model factory (registry kind "model") is given besides its model config.

    task_name, gen_length: the run's task and generation length (the tiny model picks its
    checkpoint by task; the oracle checks the length). examples and references: the run's
    examples and the task that holds their reference outputs (None when it has none), for the
    models that predict known outputs.
    """

    task_name: str
    gen_length: int
    examples: list[Example] = field(default_factory=list)
    references: ReferenceSource | None = None
