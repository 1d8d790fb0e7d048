"""4x4 Sudoku, scored by grid validity and agreement with the givens.

Two sources (see ../shared/data/SOURCES.md):
- d1: `sudoku/d1_4x4_test_sudoku.csv` (500 puzzles, 8 givens each; 124 have several solutions), with
  d1's system prompt and its `<reasoning> ... </reasoning> <answer> ... </answer>` output format;
- dream: `sudoku/dream_4x4/sudoku_4x4_<givens>.jsonl` with Dream's 8-shot prompt (the first 8 rows
  are the shots, the rest are scored) and a bare 4-line grid as output.
"""

from __future__ import annotations

import re
from typing import Any

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.registry import register
from nclb.schema import OneOf
from nclb.tasks.base import Score, task_arguments
from nclb.tasks.data import load_rows
from nclb.tasks.template import infilling_canvas, plain_canvas
from nclb.types import Canvas, Example

SOURCES = ("d1", "dream")  # the two puzzle files (see the module docstring)

# d1's SUDOKU_SYSTEM_PROMPT (dllm-reasoning/d1, eval/sudoku.py), sent as part of the user turn.
D1_PROMPT = """Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

Rules:
- Fill empty cells with digits 1-4
- Each row must contain digits 1-4 exactly once
- Each column must contain digits 1-4 exactly once
- Each 2x2 box must contain digits 1-4 exactly once

Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""
D1_PREFIX = "<reasoning>\n"  # d1 appends "<reasoning>" after the chat template's generation prompt
D1_DELIMITER = "\n</reasoning>\n<answer>\n"
D1_REASONING = "Fill every empty cell so that each row, column and 2x2 box holds 1, 2, 3 and 4."
DREAM_PROMPT = (
    "Fill the positions where the values are 0 in a 4x4 grid with digits 1-4 so that each column, "
    "each row, and each of the four 2x2 subgrids that compose the grid contains all of the digits "
    "from 1 to 4.\n\n"
)
DREAM_SHOTS = 8
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
_CONFIG_KEYS = ("data_dir", "source", "template", "answer_length", "dream_givens")


def is_solution(grid: str, puzzle: str) -> bool:
    """16 digits 1-4, every row, column and 2x2 box a permutation of 1-4, givens kept."""
    if len(grid) != 16 or set(grid) - set("1234"):
        return False
    if any(p != "0" and p != g for p, g in zip(puzzle, grid, strict=True)):
        return False
    rows = [grid[4 * r : 4 * r + 4] for r in range(4)]
    cols = ["".join(row[c] for row in rows) for c in range(4)]
    boxes = [rows[r][c : c + 2] + rows[r + 1][c : c + 2] for r in (0, 2) for c in (0, 2)]
    return all(set(unit) == set("1234") for unit in rows + cols + boxes)


def cell_accuracy(grid: str, puzzle: str, solution: str) -> float:
    """d1's metric: the fraction of originally empty cells equal to the stored solution."""
    empty = [i for i, p in enumerate(puzzle) if p == "0"]
    hits = sum(i < len(grid) and grid[i] == solution[i] for i in empty)
    return hits / len(empty) if empty else 1.0


def extract_grid(text: str, source: str) -> str:
    """All the digits of the answer part of `text`, in order ("" if there are none).

    d1: the last `<answer>` part if there is one, else `text` up to `</answer>` (an answer
    block, which continues `<answer>`); dream: `text` up to the first blank line (Dream's rule).
    Nothing is cut to 16: an answer with more or fewer digits than the grid is no solution.
    """
    if source == "dream":
        text = text.strip("\n ").split("\n\n")[0]
    elif found := _ANSWER.findall(text):
        text = found[-1]
    else:
        text = text.split("</answer>")[0]
    return "".join(re.findall(r"\d", text))


@register("task", "sudoku")
class SudokuTask:
    """4x4 Sudoku. Template: d1 defaults to infilling (`</reasoning> <answer>` delimiter before an
    answer block), dream supports plain only (its output is the bare grid)."""

    name = "sudoku"

    def __init__(
        self,
        data_dir: str | None = None,
        source: str = "d1",
        template: str | None = None,
        answer_length: int = 24,
        dream_givens: int = 10,
    ) -> None:
        OneOf(options=SOURCES).check("task.source", source)
        template = template or ("infilling" if source == "d1" else "plain")
        if template not in ("infilling", "plain") or (source, template) == ("dream", "infilling"):
            raise UserError(f"template {template!r} is not available for source {source!r}")
        self.data_dir, self.source, self.template = data_dir, source, template
        self.answer_length, self.dream_givens = answer_length, dream_givens

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> SudokuTask:
        """Build from the task YAML (as a plain dict); a key it does not read is an error."""
        if cfg.get("n_shot"):
            raise UserError(f"n_shot is not supported by {cls.name}; it is zero-shot")
        return cls(**task_arguments(cls.name, cfg, _CONFIG_KEYS, checked=("n_shot",)))

    def examples(self, limit: int | None = None) -> list[Example]:
        """Puzzles in file order (d1: all 500; dream: the rows after the 8 shots)."""
        if self.source == "d1":
            rows = load_rows(
                "sudoku/d1_4x4_test_sudoku.csv", self.data_dir, fields=("Puzzle", "Solution")
            )
            return [
                Example(
                    f"sudoku-d1-{i}",
                    f"{D1_PROMPT}\nSolve the following Sudoku puzzle: {row['Puzzle']}\n",
                    {"puzzle": row["Puzzle"], "solution": row["Solution"]},
                )
                for i, row in enumerate(rows[:limit])
            ]
        rows = load_rows(
            f"sudoku/dream_4x4/sudoku_4x4_{self.dream_givens}.jsonl",
            self.data_dir,
            fields=("input", "output"),
        )
        shots = "\n\n".join(
            f"Input:\n{r['input']}\nOutput:\n{r['output']}" for r in rows[:DREAM_SHOTS]
        )
        return [
            Example(
                f"sudoku-dream{self.dream_givens}-{i}",
                f"{DREAM_PROMPT}{shots}\n\nInput:\n{row['input']}\nOutput:\n ",
                {
                    "puzzle": row["input"].replace("\n", ""),
                    "solution": row["output"].replace("\n", ""),
                },
            )
            for i, row in enumerate(rows[DREAM_SHOTS:][:limit], start=DREAM_SHOTS)
        ]

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """Prompt ids (chat template, plus d1's `<reasoning>` prefix) and the region."""
        prompt = model.prompt_ids(example.prompt)
        if self.source == "d1":
            prompt += model.codec.encode(D1_PREFIX)
        if self.template == "plain":
            return plain_canvas(prompt, model.mask_id, gen_length)
        return infilling_canvas(prompt, model, gen_length, D1_DELIMITER, self.answer_length)

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Correct when the extracted grid is a valid solution keeping the givens."""
        grid = extract_grid(region_text if answer_text is None else answer_text, self.source)
        puzzle, solution = example.gold["puzzle"], example.gold["solution"]
        detail = {
            "cell_accuracy": cell_accuracy(grid, puzzle, solution),
            "matches_stored": grid == solution,
        }
        return Score(grid, is_solution(grid, puzzle), detail)

    def reference_output(self, example: Example) -> tuple[str, str | None]:
        """The stored solution in this task's output format: (reasoning, answer block or None)."""
        solution = example.gold["solution"]
        if self.source == "dream":
            return "\n".join(solution[i : i + 4] for i in range(0, 16, 4)), None
        if self.template == "plain":
            return f"{D1_REASONING}{D1_DELIMITER}{solution}\n</answer>", None
        return D1_REASONING, f"{solution}\n</answer>"
