"""GSM8k (Cobbe et al. 2021): grade-school word problems with a numeric answer."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from nclb.errors import UserError
from nclb.registry import register
from nclb.schema import OneOf
from nclb.tasks.base import Score, task_arguments
from nclb.tasks.data import HubSource, load_rows
from nclb.tasks.extract import numeric_answer, parse_number, truncate_at_stop
from nclb.tasks.template import TEMPLATES, AnswerTemplate
from nclb.types import Example

DELIMITER = "The answer is \\boxed{"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# lm-eval's gsm8k `until` list: the few-shot format's next question marks the end of the answer.
STOP = ("Question:",)
EXTRACT = ("auto", "strict", "lenient", "flexible")
_CALC = re.compile(r"<<[^>]*>>")
_CONFIG_KEYS = (
    "data_dir",
    "split",
    "template",
    "answer_length",
    "n_shot",
    "instruction",
    "delimiter",
    "extract",
    "stop",
)


def split_solution(answer: str) -> tuple[str, str]:
    """(worked solution without `<<calc>>` notes, final answer) of a GSM8k `answer` field."""
    steps, _, final = answer.rpartition("####")
    return _CALC.sub("", steps).strip(), final.strip()


def format_number(value: Fraction | None) -> str:
    """A Fraction as the shortest plain decimal text ("18", "2.5"); "" for None."""
    if value is None:
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


@register("task", "gsm8k")
class GSM8kTask(AnswerTemplate):
    """GSM8k test set; infilling template `... The answer is \\boxed{` + answer block, or plain."""

    name = "gsm8k"

    def __init__(
        self,
        data_dir: str | None = None,
        split: str = "test",
        template: str = "infilling",
        answer_length: int = 10,
        n_shot: int = 0,
        instruction: str = INSTRUCTION,
        delimiter: str = DELIMITER,
        extract: str = "auto",
        stop: tuple[str, ...] | list[str] = STOP,
    ) -> None:
        OneOf(options=TEMPLATES).check("task.template", template)
        OneOf(options=EXTRACT).check("task.extract", extract)
        if isinstance(stop, str) or not all(isinstance(x, str) for x in stop):
            raise UserError(f"stop must be a list of strings, got {stop!r}")
        self.data_dir, self.split, self.template = data_dir, split, template
        self.answer_length, self.n_shot = answer_length, n_shot
        self.instruction, self.delimiter, self.extract = instruction, delimiter, extract
        self.stop = tuple(stop)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> GSM8kTask:
        """Build from the task YAML (as a plain dict); a key it does not read is an error."""
        return cls(**task_arguments(cls.name, cfg, _CONFIG_KEYS))

    def _rows(self, split: str) -> list[dict]:
        return load_rows(
            f"gsm8k/{split}.jsonl",
            self.data_dir,
            HubSource("openai/gsm8k", split, "main"),
            fields=("question", "answer"),
        )

    def _shots(self) -> str:
        if self.n_shot <= 0:
            return ""
        blocks = []
        for row in self._rows("train")[: self.n_shot]:
            steps, final = split_solution(row["answer"])
            blocks.append(
                f"Question: {row['question']}\nAnswer: {steps} {self.delimiter}{final}}}.\n\n"
            )
        return f"{self.instruction}\n\n" + "".join(blocks)

    def examples(self, limit: int | None = None) -> list[Example]:
        """Test problems in file order; few-shot examples (n_shot) are the first train rows."""
        shots = self._shots()
        out = []
        for i, row in enumerate(self._rows(self.split)[:limit]):
            steps, final = split_solution(row["answer"])
            if shots:
                prompt = f"{shots}Question: {row['question']}\nAnswer:"
            else:
                prompt = f"{row['question']}\n{self.instruction}"
            out.append(Example(f"gsm8k-{self.split}-{i}", prompt, final, {"solution": steps}))
        return out

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Numeric match with the gold number, strict and lenient (docs/scoring.md).

        The plain template's text is cut at the first stop sequence first."""
        if self.template == "plain":
            region_text = truncate_at_stop(region_text, self.stop)
        gold = parse_number(example.gold)
        strict_value, _ = numeric_answer(region_text, answer_text, strict=True)
        value, rule = numeric_answer(region_text, answer_text)
        strict = strict_value is not None and strict_value == gold
        lenient = value is not None and value == gold
        use_strict = self.uses_strict()
        shown = strict_value if use_strict else value
        detail = {
            "rule": rule,
            "strict_correct": strict,
            "lenient_correct": lenient,
            "verdict": "strict" if use_strict else "lenient",
        }
        return Score(format_number(shown), strict if use_strict else lenient, detail)

    def reference_output(self, example: Example) -> tuple[str, str | None]:
        """The gold solution in this task's output format: (reasoning, answer block or None)."""
        steps = example.meta["solution"]
        if self.template == "plain":
            return f"{steps} {self.delimiter}{example.gold}}}.", None
        return steps, f"{example.gold}}}."
