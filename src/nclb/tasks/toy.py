"""The oracle's own task: produce a sequence in the support of its joint (a palindrome)."""

from __future__ import annotations

from dataclasses import dataclass

from nclb.models.base import MaskedLM
from nclb.registry import register
from nclb.tasks.base import Score, task_arguments
from nclb.tasks.template import plain_canvas
from nclb.types import Canvas, Example


@register("task", "toy")
@dataclass
class PalindromeTask:
    """n empty prompts; an output is correct when it is a palindrome of the full length."""

    n: int = 100
    length: int = 6
    name: str = "toy"

    @classmethod
    def from_config(cls, cfg: dict) -> PalindromeTask:
        """Build from the task YAML; a key it does not read is an error."""
        task_arguments(cls.name, cfg, ("n",))
        return cls(n=int(cfg.get("n", 100)), length=int(cfg["gen_length"]))

    def examples(self, limit: int | None = None) -> list[Example]:
        """`n` identical items (the oracle has no prompt), or the first `limit`."""
        count = self.n if limit is None else min(limit, self.n)
        return [Example(id=f"toy-{i}", prompt="", gold=None) for i in range(count)]

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """An all-mask region after an empty prompt."""
        return plain_canvas(model.prompt_ids(example.prompt), model.mask_id, gen_length)

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Correct when the output is a full-length palindrome."""
        ok = len(region_text) == self.length and region_text == region_text[::-1]
        return Score(prediction=region_text, correct=ok)
