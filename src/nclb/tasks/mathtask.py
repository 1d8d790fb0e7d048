"""MATH (Hendrycks et al. 2021): MATH500 by default, the full 5000-problem test set on request.

Named `mathtask` so that it never shadows the standard library's `math`.
"""

from __future__ import annotations

from typing import Any

from nclb.errors import UserError
from nclb.registry import register
from nclb.schema import OneOf
from nclb.tasks.base import Score, task_arguments
from nclb.tasks.data import HubSource, load_rows
from nclb.tasks.extract import math_answer_text, truncate_at_stop
from nclb.tasks.math_compare import math_equal
from nclb.tasks.template import TEMPLATES, AnswerTemplate
from nclb.types import Example

DELIMITER = "The answer is \\boxed{"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
SUBSETS = {
    "math500": ("math/math500.jsonl", HubSource("HuggingFaceH4/MATH-500", "test")),
    "full": ("math/test.jsonl", None),
}
EXTRACT = ("auto", "strict", "lenient")
_CONFIG_KEYS = (
    "data_dir",
    "subset",
    "template",
    "answer_length",
    "instruction",
    "delimiter",
    "extract",
    "stop",
)


@register("task", "math")
class MathTask(AnswerTemplate):
    """MATH problems; infilling template `... The answer is \\boxed{` + answer block, or plain."""

    name = "math"

    def __init__(
        self,
        data_dir: str | None = None,
        subset: str = "math500",
        template: str = "infilling",
        answer_length: int = 10,
        instruction: str = INSTRUCTION,
        delimiter: str = DELIMITER,
        extract: str = "auto",
        stop: tuple[str, ...] | list[str] = (),
    ) -> None:
        OneOf(options=EXTRACT).check("task.extract", extract)
        if isinstance(stop, str) or not all(isinstance(x, str) for x in stop):
            raise UserError(f"stop must be a list of strings, got {stop!r}")
        OneOf(options=tuple(sorted(SUBSETS))).check("task.subset", subset)
        OneOf(options=TEMPLATES).check("task.template", template)
        self.data_dir, self.subset, self.template = data_dir, subset, template
        self.answer_length, self.instruction, self.delimiter = answer_length, instruction, delimiter
        self.extract, self.stop = extract, tuple(stop)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> MathTask:
        """Build from the task YAML (as a plain dict); a key it does not read is an error."""
        if cfg.get("n_shot"):
            raise UserError(f"n_shot is not supported by {cls.name}; it is zero-shot")
        return cls(**task_arguments(cls.name, cfg, _CONFIG_KEYS, checked=("n_shot",)))

    def examples(self, limit: int | None = None) -> list[Example]:
        """Problems in file order, zero-shot, with the boxed-answer instruction."""
        rel, hub = SUBSETS[self.subset]
        out = []
        for i, row in enumerate(load_rows(rel, self.data_dir, hub, ("problem", "answer"))[:limit]):
            meta = {k: row.get(k) for k in ("solution", "subject", "level", "unique_id")}
            prompt = f"{row['problem']}\n{self.instruction}"
            out.append(Example(row.get("unique_id") or f"math-{i}", prompt, row["answer"], meta))
        return out

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Symbolic match (normalised string, then math-verify), strict and lenient
        (docs/scoring.md). The plain template's text is cut at the first stop sequence first."""
        if self.template == "plain":
            region_text = truncate_at_stop(region_text, self.stop)
        strict_pred, _ = math_answer_text(region_text, answer_text, strict=True)
        prediction, rule = math_answer_text(region_text, answer_text)
        strict = strict_pred is not None and math_equal(strict_pred, example.gold)
        if prediction == strict_pred:
            lenient = strict
        else:
            lenient = prediction is not None and math_equal(prediction, example.gold)
        use_strict = self.uses_strict()
        detail = {
            "rule": rule,
            "strict_correct": strict,
            "lenient_correct": lenient,
            "verdict": "strict" if use_strict else "lenient",
        }
        shown = strict_pred if use_strict else prediction
        return Score(shown or "", strict if use_strict else lenient, detail)

    def reference_output(self, example: Example) -> tuple[str, str | None]:
        """The gold solution in this task's output format: (reasoning, answer block or None)."""
        solution = example.meta["solution"]
        if self.template == "plain":
            return f"{solution}\n{self.delimiter}{example.gold}}}.", None
        return solution, f"{example.gold}}}."
