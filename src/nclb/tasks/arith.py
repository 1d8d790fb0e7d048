"""Multi-step arithmetic with a chain-of-thought, laid out as reasoning-as-infilling.

Problem: a start value and a chain of `+`/`-` steps, e.g. prompt "23+45-17=?".
Region: the scratchpad (one equation per step, `;`-terminated, padded with eos), the delimiter,
then the answer block. Every intermediate value stays within [value_min, value_max], so the answer
is correct by construction. With `reverse_digits` the scratchpad writes every number least
significant digit first ("23+45=68" becomes "32+54=86"), which makes carries local and left-to-right;
the prompt and the answer block always use ordinary digit order.

Chain variant (`modulus`, `ops`, `distinct_operands`, `operand_multiple`, `trace_orders`): with
`modulus` every value is taken modulo it and the scratchpad writes running values and operands
with fixed widths (the shipped `chain` adds 3-6 distinct digits to a two-digit start with
modulus 100, which its ranges never reach; configs/task/chain.yaml says why). `trace_orders`
says which scratchpads a training example may take: `canonical` applies the operations in the
prompt's order (one valid trace); `two_way` in that order or its reverse; `any` in a random order,
so a problem has many valid scratchpads and the model's distribution over the next step is truly
multimodal (the condition under which committing several tokens from their marginals mixes
incompatible continuations). The checker accepts exactly the orders the setting allows.
With `repeat_value: false` a step leaves out the running value it starts from (`+b=c;` instead of
`a+b=c;`), so a masked result cannot be copied back from the next step: it must be computed.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from nclb.models.base import MaskedLM
from nclb.registry import register
from nclb.schema import Flag, Integer, OneOf, check_fields, setting
from nclb.tasks.base import Score, dataclass_task
from nclb.tasks.template import TemplateError, infilling_canvas
from nclb.types import Canvas, Example

_STEP = re.compile(r"^(\d*)([+-])(\d+)=(\d+)$")
_WHOLE_INT = re.compile(r"^\s*(-?\d+)\s*$")
TRACE_ORDERS = ("canonical", "any", "two_way")


@register("task", "arith")
@register("task", "chain")
@register("task", "chain_canonical")
@register("task", "chain_two_way")
@dataclass
class ArithTask:
    """Seeded arithmetic chains; the held-out test set is `generate(n_test, seed)`."""

    name: str = "arith"
    gen_length: int = setting(48, Integer(min=1))
    block: int = setting(8, Integer(min=1))
    answer_length: int = setting(4, Integer(min=1))
    n_test: int = setting(500, Integer(min=1, meaning="held-out problems"))
    seed: int = setting(1234, Integer(min=0))
    delimiter: str = "The answer is: "
    value_min: int = 10
    value_max: int = 99
    operand_min: int = 10
    operand_max: int = 99
    operand_multiple: int = 1  # every operand is a multiple of this
    min_steps: int = 2
    max_steps: int = 3
    reverse_digits: bool = setting(True, Flag())
    trace_max_steps: int | None = None  # longer chains are answer-only in gold_region (Table 4)
    modulus: int | None = None  # values wrap modulo this (written with a fixed width) if set
    # canonical | two_way | any: orders a scratchpad may take
    trace_orders: str = setting("canonical", OneOf(options=TRACE_ORDERS))
    train_min_steps: int | None = None  # shortest training chain (default: min_steps)
    # each step writes the running value it starts from (a+b=c;)
    repeat_value: bool = setting(True, Flag())
    ops: str = "+-"  # the operations a chain draws from
    # with `modulus`: no operand appears twice in one chain
    distinct_operands: bool = setting(False, Flag())
    train_exclude_steps: list[int] | None = None  # also keep these step counts' test sets unseen

    @classmethod
    def from_config(cls, cfg: dict) -> ArithTask:
        """Build from the task YAML (as a dict); unknown keys are an error."""
        return dataclass_task(cls, cfg)

    def __post_init__(self) -> None:
        check_fields(self, "task.")
        if self.modulus is None and not 10 <= self.value_min <= self.value_max:
            raise ValueError(
                "values must have at least two digits: need 10 <= value_min <= value_max"
            )
        if self.modulus is not None and not 0 <= self.value_min <= self.value_max < self.modulus:
            raise ValueError("need 0 <= value_min <= value_max < modulus")
        if not 1 <= self.operand_min <= self.operand_max:
            raise ValueError("need 1 <= operand_min <= operand_max")
        if self.operand_multiple < 1 or self._largest_operand(self.operand_max) is None:
            raise ValueError("need a multiple of operand_multiple in [operand_min, operand_max]")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError("need 1 <= min_steps <= max_steps")
        if not self.ops or set(self.ops) - set("+-"):
            raise ValueError("ops must be '+', '-' or '+-'")
        if self.distinct_operands and len(self._operand_values()) < self.max_steps:
            raise ValueError("distinct_operands needs at least max_steps allowed operands")
        if self.modulus is not None and not 2 <= self.modulus <= 10**self.width:
            raise ValueError("need 2 <= modulus <= 10**digits of value_max")
        if self.train_min_steps is not None and not 0 <= self.train_min_steps <= self.max_steps:
            raise ValueError("need 0 <= train_min_steps <= max_steps")
        excluded = self.train_exclude_steps or []
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in excluded):
            raise ValueError("train_exclude_steps must be a list of step counts >= 1")
        self._test: list[Example] | None = None

    # ---- data -------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Digits of a scratchpad value when values wrap (fixed width, zero-padded)."""
        return len(str(self.value_max))

    def _num(self, value: int, width: int | None = None) -> str:
        """A number as written in the scratchpad (a running value, or an operand of `width` digits)."""
        text = str(value).zfill(width or self.width) if self.modulus else str(value)
        return text[::-1] if self.reverse_digits else text

    def _apply(self, value: int, op: str, operand: int) -> int:
        """One operation, wrapped when `modulus` is set."""
        result = value + operand if op == "+" else value - operand
        return result % self.modulus if self.modulus else result

    def _sample(self, rng: random.Random, min_steps: int | None = None) -> tuple[int, list]:
        """One chain; without `modulus` its running values all stay in [value_min, value_max]."""
        low = self.min_steps if min_steps is None else min_steps
        if self.modulus:
            start = rng.randint(self.value_min, self.value_max)
            n_steps = rng.randint(low, self.max_steps)
            if self.distinct_operands:
                operands = rng.sample(self._operand_values(), n_steps)
            else:
                operands = [self._draw_operand(rng, self.operand_max) for _ in range(n_steps)]
            return start, [(rng.choice(self.ops), operand) for operand in operands]
        while True:
            value = start = rng.randint(self.value_min, self.value_max)
            steps: list[tuple[str, int]] = []
            for _ in range(rng.randint(low, self.max_steps)):
                room = {"+": self.value_max - value, "-": value - self.value_min}
                ops = [op for op in self.ops if self._largest_operand(room[op]) is not None]
                if not ops:
                    break
                op = rng.choice(ops)
                operand = self._draw_operand(rng, room[op])
                value = value + operand if op == "+" else value - operand
                steps.append((op, operand))
            else:
                return start, steps

    def _smallest_operand(self) -> int:
        """The smallest multiple of operand_multiple >= operand_min."""
        return -(-self.operand_min // self.operand_multiple) * self.operand_multiple

    def _operand_values(self) -> list[int]:
        """Every allowed operand, ascending."""
        return list(range(self._smallest_operand(), self.operand_max + 1, self.operand_multiple))

    def _largest_operand(self, limit: int) -> int | None:
        """The largest allowed operand <= limit (None when there is none)."""
        top = min(self.operand_max, limit) // self.operand_multiple * self.operand_multiple
        return top if top >= self.operand_min else None

    def _draw_operand(self, rng: random.Random, limit: int) -> int:
        """A uniform allowed operand <= limit (one must exist)."""
        step = self.operand_multiple
        return step * rng.randint(
            self._smallest_operand() // step, self._largest_operand(limit) // step
        )

    def trace(self, start: int, steps: list[tuple[str, int]]) -> str:
        """The scratchpad that applies `steps` in the given order."""
        value, parts = start, []
        for op, operand in steps:
            result = self._apply(value, op, operand)
            left = self._num(value) if self.repeat_value else ""
            operand_text = self._num(operand, len(str(self.operand_max)))
            parts.append(f"{left}{op}{operand_text}={self._num(result)};")
            value = result
        return "".join(parts)

    def make_example(self, start: int, steps: list[tuple[str, int]], id: str) -> Example:
        """The example for a given chain, with its canonical scratchpad trace and answer."""
        value = start
        for op, operand in steps:
            value = self._apply(value, op, operand)
        prompt = str(start) + "".join(f"{op}{operand}" for op, operand in steps) + "=?"
        meta = {
            "start": start,
            "steps": [list(s) for s in steps],
            "trace": self.trace(start, steps),
        }
        return Example(id=id, prompt=prompt, gold=value, meta=meta)

    def generate(self, n: int, seed: int, exclude: set[str] | None = None) -> list[Example]:
        """`n` distinct examples from `seed` (deterministic), skipping prompts in `exclude`."""
        rng, seen, out = random.Random(seed), set(exclude or ()), []
        while len(out) < n:
            start, steps = self._sample(rng)
            ex = self.make_example(start, steps, id=f"{self.name}-{seed}-{len(out)}")
            if ex.prompt not in seen:
                seen.add(ex.prompt)
                out.append(ex)
        return out

    def examples(self, limit: int | None = None) -> list[Example]:
        """The fixed held-out test set (first `limit` items)."""
        if self._test is None:
            self._test = self.generate(self.n_test, self.seed)
        return self._test[:limit]

    def train_stream(self, seed: int) -> Iterator[Example]:
        """Endless training examples from `seed` (must differ from the test seed), test items
        excluded: the task's test set, and the test sets of the chain lengths in
        `train_exclude_steps` (the same task with min_steps = max_steps = n)."""
        if seed == self.seed:
            raise ValueError("the training seed must differ from the test seed")
        test = {ex.prompt for ex in self.examples()}
        for n in self.train_exclude_steps or ():
            fixed = dataclasses.replace(self, min_steps=n, max_steps=n, train_exclude_steps=None)
            test |= {ex.prompt for ex in fixed.examples()}
        rng = random.Random(seed)
        while True:
            start, steps = self._sample(rng, self.train_min_steps)
            ex = self.make_example(start, steps, id="train")
            if ex.prompt in test:
                continue
            if self.trace_orders == "any":
                ex.meta["trace"] = self.trace(start, rng.sample(steps, len(steps)))
            elif self.trace_orders == "two_way" and rng.random() < 0.5:
                ex.meta["trace"] = self.trace(start, steps[::-1])
            yield ex

    # ---- layout -----------------------------------------------------------------------------

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """[prompt] [MASK]*R <delimiter> [MASK]*answer_length."""
        return infilling_canvas(
            model.prompt_ids(example.prompt), model, gen_length, self.delimiter, self.answer_length
        )

    def gold_region(self, example: Example, model: MaskedLM, gen_length: int) -> list[int]:
        """The filled region: scratchpad padded with eos, delimiter, answer padded with eos.

        With `trace_max_steps`, chains of more steps keep a masked scratchpad (answer only)."""
        canvas = infilling_canvas(
            [], model, gen_length, self.delimiter, self.answer_length, answer_text=str(example.gold)
        )
        trace = model.codec.encode(example.meta["trace"])
        reasoning = canvas.answer[0] - len(model.codec.encode(self.delimiter))
        if self.trace_max_steps is not None and len(example.meta["steps"]) > self.trace_max_steps:
            # Answer only: the scratchpad stays masked, so a trainer leaves it out of the loss.
            return [model.mask_id] * reasoning + canvas.region[reasoning:]
        if len(trace) > reasoning:
            raise TemplateError(
                f"trace of {len(trace)} tokens exceeds the reasoning budget {reasoning}; "
                "raise gen_length"
            )
        pad = [model.eos_ids[0]] * (reasoning - len(trace))
        return trace + pad + canvas.region[reasoning:]

    # ---- scoring ----------------------------------------------------------------------------

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Exact integer match. Strict (`correct`): the answer block must hold one integer and
        nothing else ("98.9" and "98 1" are no answer). Lenient: an empty answer block falls back
        to the region (the last number after the delimiter, else the last scratchpad result)."""
        strict = _first_int(answer_text) if answer_text is not None else None
        lenient, source = strict, "answer"
        if lenient is None and not (answer_text or "").strip():
            lenient, source = self._region_answer(region_text), "region"
        return Score(
            prediction="" if strict is None else str(strict),
            correct=strict is not None and strict == example.gold,
            detail={
                "source": source,
                "strict_correct": strict is not None and strict == example.gold,
                "lenient_correct": lenient is not None and lenient == example.gold,
                "verdict": "strict",
                "trace_ok": self.check_trace(region_text, example.prompt),
            },
        )

    def _region_answer(self, region_text: str) -> int | None:
        """The integer after the delimiter, else the last scratchpad result."""
        if self.delimiter in region_text:
            value = _first_int(region_text.split(self.delimiter, 1)[1])
            if value is not None:
                return value
        results = re.findall(r"=(\d+)", region_text.split(self.delimiter, 1)[0])
        return int(self._read(results[-1])) if results else None

    def _read(self, text: str) -> str:
        """Undo the scratchpad digit order."""
        return text[::-1] if self.reverse_digits else text

    def check_trace(self, text: str, prompt: str | None = None) -> bool:
        """Recompute every step of a scratchpad (the text before the delimiter).

        Each step must be `a<op>b=c;` (`<op>b=c;` without `repeat_value`) with c = a op b (mod
        `modulus` if set), each step must start from the previous result (the first from the
        prompt's start value), and with `prompt` the steps must be exactly the problem's
        operations: in the prompt's order, also reversed when `trace_orders` is `two_way`, in
        any order when it is `any`. Without `repeat_value` and without `prompt` the first step's
        start is unknown and goes unchecked.
        """
        body = text.split(self.delimiter, 1)[0].strip()
        parts = body.split(";")
        start = re.match(r"\d+", prompt) if prompt is not None else None
        if parts[-1].strip() or (prompt is not None and start is None):
            return False
        previous = int(start[0]) if start is not None else None
        steps = []
        for part in parts[:-1]:
            m = _STEP.match(part)
            if m is None or bool(m[1]) != self.repeat_value:
                return False
            a = int(self._read(m[1])) if m[1] else previous
            op, b, c = m[2], int(self._read(m[3])), int(self._read(m[4]))
            if a is not None and (self._apply(a, op, b) != c or previous not in (None, a)):
                return False
            steps.append((op, b))
            previous = c
        if prompt is None:
            return bool(steps)
        expected = [(op, int(b)) for op, b in re.findall(r"([+-])(\d+)", prompt)]
        if self.trace_orders == "any":
            return sorted(expected) == sorted(steps)
        return steps == expected or (self.trace_orders == "two_way" and steps == expected[::-1])


def _first_int(text: str) -> int | None:
    """The integer `text` holds when it holds exactly one integer and nothing else, else None."""
    m = _WHOLE_INT.match(text)
    return int(m[1]) if m else None
