"""A decoded region read back as text (and its answer block's text) and scored by its task: the
one place that turns a generation into a verdict."""

from __future__ import annotations

from dataclasses import dataclass

from nclb.models.base import MaskedLM
from nclb.tasks.base import Score, Task
from nclb.types import Canvas, Example


@dataclass
class Output:
    """The region's text, the answer block's text (None when the canvas has none), the score."""

    text: str
    answer: str | None
    score: Score


def read_output(
    task: Task, model: MaskedLM, example: Example, canvas: Canvas, region: list[int]
) -> Output:
    """Decode `region` (the filled canvas region) and its answer block, and score them."""
    text = model.codec.decode(region)
    answer = None
    if canvas.answer is not None:
        answer = model.codec.decode(region[canvas.answer[0] : canvas.answer[1]])
    return Output(text, answer, task.score(example, text, answer))
