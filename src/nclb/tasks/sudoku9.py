"""9x9 Sudoku with unique solutions, laid out in place.

The prompt is a short marker; the region is the 81 cells row by row (one token per cell), givens
pre-filled and blanks left as mask ids; there is no answer block. A grid is written as 81 digits,
"0" for a blank. Puzzles are carved from random full grids, removing cells only while a counting
solver still finds exactly one solution.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from nclb.models.base import MaskedLM
from nclb.registry import register
from nclb.schema import Integer, check_fields, setting
from nclb.tasks.base import Score, dataclass_task
from nclb.tasks.template import TemplateError
from nclb.types import Canvas, Example

CELLS = 81
_ALL = 0x3FE  # bits 1..9
_ROW = [i // 9 for i in range(CELLS)]
_COL = [i % 9 for i in range(CELLS)]
_BOX = [(i // 27) * 3 + (i % 9) // 3 for i in range(CELLS)]


def count_solutions(grid: str, limit: int = 2, rng: random.Random | None = None) -> list[str]:
    """Up to `limit` solutions of `grid` (81 chars, "0" blank) by backtracking with
    most-constrained-cell-first; with `rng`, candidate digits are tried in random order."""
    cells = [int(c) for c in grid]
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for i, v in enumerate(cells):
        if v:
            bit = 1 << v
            if (rows[_ROW[i]] | cols[_COL[i]] | boxes[_BOX[i]]) & bit:
                return []
            rows[_ROW[i]] |= bit
            cols[_COL[i]] |= bit
            boxes[_BOX[i]] |= bit
    blanks = [i for i, v in enumerate(cells) if not v]
    found: list[str] = []

    def search() -> None:
        best, best_free, best_n = -1, 0, 10
        for i in blanks:
            if not cells[i]:
                free = _ALL & ~(rows[_ROW[i]] | cols[_COL[i]] | boxes[_BOX[i]])
                n = free.bit_count()
                if n < best_n:
                    best, best_free, best_n = i, free, n
                    if n <= 1:
                        break
        if best < 0:
            found.append("".join(map(str, cells)))
            return
        digits = [d for d in range(1, 10) if best_free >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        r, c, b = _ROW[best], _COL[best], _BOX[best]
        for d in digits:
            bit = 1 << d
            cells[best] = d
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            search()
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            cells[best] = 0
            if len(found) >= limit:
                return

    search()
    return found


def random_solution(rng: random.Random) -> str:
    """A uniformly shuffled search for a full valid grid."""
    return count_solutions("0" * CELLS, limit=1, rng=rng)[0]


def carve(solution: str, blanks: int, rng: random.Random) -> str | None:
    """Blank cells of `solution` in random order while the puzzle stays unique; None if it
    cannot reach `blanks` blanks."""
    cells = list(solution)
    removed = 0
    for i in rng.sample(range(CELLS), CELLS):
        keep, cells[i] = cells[i], "0"
        if len(count_solutions("".join(cells))) == 1:
            removed += 1
            if removed == blanks:
                return "".join(cells)
        else:
            cells[i] = keep
    return None


def is_valid_solution(grid: str, puzzle: str) -> bool:
    """True if `grid` is a full valid Sudoku that keeps every given of `puzzle`."""
    if len(grid) != CELLS or not all("1" <= c <= "9" for c in grid):
        return False
    if any(p != "0" and p != g for p, g in zip(puzzle, grid, strict=True)):
        return False
    units = [_ROW, _COL, _BOX]
    return all(
        len({grid[i] for i in range(CELLS) if unit[i] == k}) == 9
        for unit in units
        for k in range(9)
    )


@functools.lru_cache(maxsize=4)
def _puzzles(n: int, seed: int, min_blanks: int, max_blanks: int) -> tuple[tuple[str, str], ...]:
    """`n` deterministic (puzzle, solution) pairs with distinct solutions."""
    rng, out, seen = random.Random(seed), [], set()
    while len(out) < n:
        solution = random_solution(rng)
        puzzle = carve(solution, rng.randint(min_blanks, max_blanks), rng)
        if puzzle is not None and solution not in seen:
            seen.add(solution)
            out.append((puzzle, solution))
    return tuple(out)


@register("task", "sudoku9")
@dataclass
class Sudoku9Task:
    """Unique-solution 9x9 puzzles with `min_blanks`..`max_blanks` blanks, solved in place."""

    name: str = "sudoku9"
    gen_length: int = setting(CELLS, Integer(min=1))
    block: int = setting(CELLS, Integer(min=1))
    n_test: int = setting(500, Integer(min=1, meaning="held-out puzzles"))
    seed: int = setting(1234, Integer(min=0))
    min_blanks: int = 30
    max_blanks: int = 55
    marker: str = "Sudoku:"
    # The region drawn as a picture (nclb show): rows x columns, and the boxes' rows x columns.
    grid_shape: ClassVar[tuple[int, int]] = (9, 9)
    grid_box: ClassVar[tuple[int, int]] = (3, 3)

    @classmethod
    def from_config(cls, cfg: dict) -> Sudoku9Task:
        """Build from the task YAML (as a dict); unknown keys are an error."""
        return dataclass_task(cls, cfg)

    def __post_init__(self) -> None:
        check_fields(self, "task.")
        if not 1 <= self.min_blanks <= self.max_blanks <= 64:
            raise ValueError("need 1 <= min_blanks <= max_blanks <= 64")

    def generate(self, n: int, seed: int) -> list[Example]:
        """`n` deterministic unique-solution puzzles from `seed`."""
        pairs = _puzzles(n, seed, self.min_blanks, self.max_blanks)
        return [self._example(p, s, f"{self.name}-{seed}-{i}") for i, (p, s) in enumerate(pairs)]

    def _example(self, puzzle: str, solution: str, id: str) -> Example:
        return Example(id=id, prompt=self.marker, gold=solution, meta={"puzzle": puzzle})

    def examples(self, limit: int | None = None) -> list[Example]:
        """The fixed held-out test set (first `limit` items; generated once per process).

        Puzzles come from one seeded stream in order, so the first `limit` are generated alone.
        """
        n = self.n_test if limit is None else min(limit, self.n_test)
        return self.generate(n, self.seed)

    def train_stream(self, seed: int) -> Iterator[Example]:
        """Endless training items: random full grids (all cells blank), test solutions excluded.

        The trainer masks cells at random, so it needs solutions, not carved puzzles.
        """
        if seed == self.seed:
            raise ValueError("the training seed must differ from the test seed")
        test = {ex.gold for ex in self.examples()}
        rng = random.Random(seed)
        while True:
            grid = random_solution(rng)
            if grid not in test:
                yield self._example("0" * CELLS, grid, "train")

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """Marker prompt; the 81 cells with givens pre-filled and blanks masked."""
        digit = self._digit_ids(model, gen_length)
        region = [digit[c] if c != "0" else model.mask_id for c in example.meta["puzzle"]]
        return Canvas(prompt=model.prompt_ids(self.marker), region=region, answer=None)

    def gold_region(self, example: Example, model: MaskedLM, gen_length: int) -> list[int]:
        """The solved grid, one digit token per cell."""
        digit = self._digit_ids(model, gen_length)
        return [digit[c] for c in example.gold]

    @staticmethod
    def _digit_ids(model: MaskedLM, gen_length: int) -> dict[str, int]:
        if gen_length != CELLS:
            raise TemplateError(f"sudoku9 needs gen_length={CELLS}, got {gen_length}")
        ids = {d: model.codec.encode(d) for d in "123456789"}
        if any(len(v) != 1 for v in ids.values()):
            raise TemplateError("sudoku9 needs a tokenizer with one token per digit")
        return {d: v[0] for d, v in ids.items()}

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Correct if the region reads as a valid grid consistent with the givens."""
        grid = "".join(re.findall(r"\S", region_text))
        ok = is_valid_solution(grid, example.meta["puzzle"])
        return Score(prediction=grid, correct=ok, detail={"cells": len(grid)})
