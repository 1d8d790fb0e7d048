"""The reasoning-as-infilling layout: [prompt] [MASK]*R <delimiter> [MASK]*A."""

from __future__ import annotations

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.tasks.base import HasReference, Task
from nclb.types import Canvas, Example

# The prompt layouts a task's `template` key names: reasoning-as-infilling, or plain.
TEMPLATES = ("infilling", "plain")


class TemplateError(UserError):
    """The template does not fit the generation region."""


def plain_canvas(prompt: list[int], mask_id: int, gen_length: int) -> Canvas:
    """A prompt followed by an all-mask region (the standard, prefix-only layout)."""
    return Canvas(prompt=list(prompt), region=[mask_id] * gen_length, answer=None)


def infilling_canvas(
    prompt: list[int],
    model: MaskedLM,
    gen_length: int,
    delimiter: str,
    answer_length: int,
    answer_text: str | None = None,
    answer_pad: str | None = None,
) -> Canvas:
    """Reasoning budget R = gen_length - len(delimiter) - answer_length, then the delimiter, then
    an answer block of `answer_length` positions.

    With `answer_text` the answer block is pre-filled (posterior sampling, p(r | c, a)); the text
    is padded to the block with `answer_pad` tokens (default: the model's first eos id).
    """
    delim = model.codec.encode(delimiter)
    reasoning = gen_length - len(delim) - answer_length
    if reasoning < 1 or answer_length < 1:
        raise TemplateError(
            f"gen_length={gen_length} leaves no room for a delimiter of {len(delim)} tokens and "
            f"an answer block of {answer_length}; raise gen_length or lower answer_length"
        )
    if answer_text is None:
        answer = [model.mask_id] * answer_length
    else:
        answer = model.codec.encode(answer_text)
        if len(answer) > answer_length:
            raise TemplateError(
                f"answer {answer_text!r} is {len(answer)} tokens, the answer block holds "
                f"{answer_length}; raise answer_length"
            )
        pad = model.codec.encode(answer_pad) if answer_pad else [model.eos_ids[0]]
        while len(answer) < answer_length:
            answer += pad[: answer_length - len(answer)]
    region = [model.mask_id] * reasoning + delim + answer
    start = reasoning + len(delim)
    return Canvas(prompt=list(prompt), region=region, answer=(start, start + answer_length))


def gold_answer_text(task: Task, example: Example) -> str:
    """The text of the gold answer block: the task's reference answer block if it has one
    (gsm8k: `72}.`), else str(gold)."""
    if isinstance(task, HasReference):
        block = task.reference_output(example)[1]
        if block is None:
            raise UserError(
                f"task={task.name} uses a plain template without an answer block; "
                "set task.template=infilling"
            )
        return block
    return str(example.gold)


def fill_answer(canvas: Canvas, model: MaskedLM, text: str) -> list[int]:
    """`canvas.region` with the answer block holding `text`, padded with the first eos id."""
    if canvas.answer is None:
        raise UserError(
            "posterior sampling needs an answer block: use a task with the reasoning-as-infilling "
            "template (arith, gsm8k, math)"
        )
    start, end = canvas.answer
    ids = model.codec.encode(text)
    if len(ids) > end - start:
        raise UserError(
            f"answer {text!r} is {len(ids)} tokens but the answer block holds {end - start}; "
            "raise answer_length"
        )
    region = list(canvas.region)
    region[start:end] = ids + [model.eos_ids[0]] * (end - start - len(ids))
    return region


class AnswerTemplate:
    """The canvas and the verdict choice of a benchmark task whose fields name a `template`
    (plain | infilling), its `delimiter` and `answer_length`, and an `extract` verdict
    (auto | strict | lenient): GSM8k and MATH."""

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """Prompt ids (chat template) and the region for the configured template."""
        prompt = model.prompt_ids(example.prompt)
        if self.template == "plain":
            return plain_canvas(prompt, model.mask_id, gen_length)
        return infilling_canvas(prompt, model, gen_length, self.delimiter, self.answer_length)

    def uses_strict(self) -> bool:
        """Whether `correct` is the strict verdict (extract=auto: for the infilling template)."""
        if self.extract == "auto":
            return self.template == "infilling"
        return self.extract == "strict"
