"""One example's decoding order, read from a run folder's records.jsonl (log_trajectory=true).

The folder is only read, never changed: a torn or unreadable line is skipped here (the runner
decides what to do with it when the run resumes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nclb.errors import UserError
from nclb.registry import entries
from nclb.runs.runlog import read_json_lines
from nclb.show.tokens import TokenNames, token_names


@dataclass
class Trajectory:
    """Which region position was committed at which forward pass of one example, and how.

    `step_of[p]` is the index of the example's own forward pass (0-based, the row of the
    picture) that committed position p, None where p was never committed: `prefilled[p]` when
    the canvas held a token there from the start (the template's delimiter, Sudoku givens),
    else p was left masked (early exit stops the reasoning). `entropy_of[p]` is p's entropy
    (nats) when it was committed; `exit_step` is the pass at which early exit committed the
    answer block. `specials` names what the SPECIAL glyph stands for in this example's
    tokens; `grid_shape` (rows, columns) and `grid_box` are set for a task whose region is a
    2-D grid (sudoku9), which is then drawn as that grid.
    """

    run_dir: Path
    model: str
    task: str
    label: str
    example_id: str
    prompt: str
    prediction: Any
    gold: Any
    correct: bool
    nfe: int
    step_of: list[int | None]
    entropy_of: list[float | None]
    token_of: list[int | None]
    text_of: list[str]
    prefilled: list[bool]
    block: int | None = None
    answer: tuple[int, int] | None = None
    exit_step: int | None = None
    notes: list[str] = field(default_factory=list)
    specials: list[str] = field(default_factory=list)
    grid_shape: tuple[int, int] | None = None
    grid_box: tuple[int, int] | None = None

    @property
    def gen_length(self) -> int:
        """Positions in the generation region."""
        return len(self.step_of)

    @property
    def steps(self) -> int:
        """Forward passes of this example (rows of the picture)."""
        return self.nfe

    def grid(self) -> list[list[float]]:
        """[steps][positions]: the entropy of each position at the pass that committed it, NaN
        everywhere else (the heatmap's data)."""
        rows = [[math.nan] * self.gen_length for _ in range(self.steps)]
        for pos, (step, ent) in enumerate(zip(self.step_of, self.entropy_of)):
            if step is not None:
                rows[step][pos] = math.nan if ent is None else ent
        return rows


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The folder's summary.json ({} when missing or unreadable: an interrupted run)."""
    try:
        data = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def pick_record(run_dir: Path, example_id: str | None) -> dict[str, Any]:
    """The record of `example_id` (the first record with a trajectory when None)."""
    records_path = run_dir / "records.jsonl"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; give a run folder (outputs/runs/<model>/...)")
    if not records_path.is_file():
        raise UserError(f"{run_dir} has no records.jsonl; give a run folder written by `nclb run`")
    records = read_json_lines(records_path)
    traced = [r for r in records if r.get("trajectory")]
    if not traced:
        raise UserError(
            f"the records in {run_dir} have no trajectory; rerun the same command with "
            "log_trajectory=true (it logs to a run folder of its own; this one is kept)"
        )
    if example_id is None:
        return traced[0]
    for record in traced:
        if str(record.get("id")) == example_id:
            return record
    known = ", ".join(str(r.get("id")) for r in traced[:5])
    raise UserError(
        f"id={example_id} has no traced record in {run_dir}; ids there include: {known}"
    )


def answer_from_config(task: dict[str, Any], gen_length: int) -> tuple[int, int] | None:
    """The answer block of the reasoning-as-infilling template from the task config (the last
    answer_length positions of the region), for records written without their canvas."""
    length = task.get("answer_length")
    if not length or task.get("template") == "plain" or int(length) >= gen_length:
        return None
    return gen_length - int(length), gen_length


def canvas_layout(
    record: dict[str, Any], step_of: list[int | None], names: TokenNames
) -> tuple[list[bool], list[str], tuple[int, int] | None] | None:
    """(pre-filled flags, their texts, answer block) from the record's starting canvas; None
    when the record has none (written before records held it) or it does not fit."""
    canvas = record.get("canvas") or {}
    region = canvas.get("region")
    committed = [p for p, s in enumerate(step_of) if s is not None]
    if not isinstance(region, list) or len(region) != len(step_of) or not committed:
        return None
    mask_id = region[committed[0]]  # every committed position started masked
    prefilled = [s is None and tok != mask_id for s, tok in zip(step_of, region)]
    texts = [names.text(tok) if pre else "" for pre, tok in zip(prefilled, region)]
    answer = canvas.get("answer")
    return prefilled, texts, (tuple(answer) if answer else None)


def guess_layout(
    record: dict[str, Any],
    step_of: list[int | None],
    text_of: list[str],
    exited: bool,
) -> tuple[list[bool], list[str]]:
    """Pre-filled flags and texts for a record without its canvas: without early exit every
    masked position gets committed, so the others were pre-filled; after an exit they cannot be
    told from positions left masked, and are shown masked. Texts come from the decoded output
    where it maps one character to one position."""
    n = len(step_of)
    prefilled = [s is None and not exited for s in step_of]
    texts = [""] * n
    output = str(record.get("output") or "")
    committed = [p for p, s in enumerate(step_of) if s is not None]
    if len(output) == n and all(output[p] == text_of[p] for p in committed):
        texts = [output[p] if prefilled[p] else "" for p in range(n)]
    return prefilled, texts


def task_grid(
    task_name: str, gen_length: int
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(grid shape, box shape) of a registered task that lays its region out as a grid, when
    the region has that many cells; (None, None) for any other task."""
    part = entries("task").get(task_name)
    shape = getattr(part, "grid_shape", None)
    if shape is None or shape[0] * shape[1] != gen_length:
        return None, None
    return tuple(shape), getattr(part, "grid_box", None)


def special_names(names: TokenNames, tokens: list[int | None]) -> list[str]:
    """What the SPECIAL glyph stands for among `tokens` (each name once, in first-seen order)."""
    found = (names.special_name(t) for t in tokens if t is not None)
    return list(dict.fromkeys(n for n in found if n))


def load_trajectory(run_dir: str | Path, example_id: str | None = None) -> Trajectory:
    """The trajectory of one example of a run folder (the first traced one by default)."""
    run_dir = Path(run_dir)
    record = pick_record(run_dir, example_id)
    summary = read_summary(run_dir)
    identity = summary.get("identity") or {}
    task, model = identity.get("task") or {}, identity.get("model") or {}
    steps = record["trajectory"]
    furthest = max((p for s in steps for p in s.get("positions", [])), default=-1)
    region = (record.get("canvas") or {}).get("region") or []
    gen_length = int(task.get("gen_length") or len(region) or furthest + 1)
    if furthest >= gen_length:
        raise UserError(
            f"record {record.get('id')} commits position {furthest}, past the run's "
            f"gen_length={gen_length}; the records and summary.json of {run_dir} disagree"
        )
    step_of: list[int | None] = [None] * gen_length
    entropy_of: list[float | None] = [None] * gen_length
    token_of: list[int | None] = [None] * gen_length
    exit_step = None
    # Row i is the example's i-th forward pass (its own count, whatever the batch's step was).
    for i, step in enumerate(steps):
        entropies = step.get("entropies") or [None] * len(step["positions"])
        for pos, tok, ent in zip(step["positions"], step["tokens"], entropies):
            if step_of[pos] is None:
                step_of[pos], token_of[pos], entropy_of[pos] = i, tok, ent
        if step.get("early_exit"):
            exit_step = i
    names = token_names(model, task)
    text_of = [names.text(t) if t is not None else "" for t in token_of]
    notes = list(names.notes)
    layout = canvas_layout(record, step_of, names)
    if layout is not None:
        prefilled, prefilled_text, answer = layout
    else:
        answer = answer_from_config(task, gen_length)
        prefilled, prefilled_text = guess_layout(record, step_of, text_of, exit_step is not None)
        notes.append("the record has no starting canvas: pre-filled positions inferred")
    text_of = [t or p for t, p in zip(text_of, prefilled_text)]
    sampler = identity.get("sampler") or {}
    shown = token_of + [t for t, pre in zip(region, prefilled) if pre]
    grid_shape, grid_box = task_grid(str(task.get("name")), gen_length)
    if sampler.get("stop_on_eos"):
        notes.append("stop_on_eos: positions filled with eos after an early eos are shown masked")
    return Trajectory(
        run_dir=run_dir,
        model=str(model.get("name", "?")),
        task=str(task.get("name", "?")),
        label=str(summary.get("label") or run_dir.name),
        example_id=str(record.get("id")),
        prompt=str(record.get("prompt", "")),
        prediction=record.get("prediction"),
        gold=record.get("gold"),
        correct=bool(record.get("correct")),
        nfe=len(steps),
        step_of=step_of,
        entropy_of=entropy_of,
        token_of=token_of,
        text_of=text_of,
        prefilled=prefilled,
        block=sampler.get("block") or task.get("block"),
        answer=answer,
        exit_step=exit_step,
        notes=notes,
        specials=special_names(names, shown),
        grid_shape=grid_shape,
        grid_box=grid_box,
    )
