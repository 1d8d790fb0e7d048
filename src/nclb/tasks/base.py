"""Task interface: a task is data, a prompt layout (canvas) and a scorer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from nclb.models.base import MaskedLM


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


@dataclass
class Score:
    """What a scorer returns for one output."""

    prediction: str
    correct: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """Data + prompt + scorer. Settings (gen_length, block, answer_length) come from its YAML."""

    name: str

    def examples(self, limit: int | None = None) -> list[Example]:
        """The evaluation examples, in a fixed order (first `limit` of them)."""
        ...

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """Token layout for `example`: prompt ids and a region of `gen_length` ids."""
        ...

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Extract the answer from the decoded region (and answer block, if any) and score it."""
        ...
