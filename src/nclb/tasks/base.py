"""Task interface: a task is data, a prompt layout (canvas) and a scorer."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.types import Canvas, Example

# Task config keys read by the run settings (nclb.config.settings.resolve), whichever the task.
RUN_KEYS = ("name", "gen_length", "block", "answer_length")


@dataclass
class Score:
    """What a scorer returns for one output."""

    prediction: str
    correct: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """Data + prompt + scorer. Settings (gen_length, block, answer_length) come from its YAML."""

    name: str

    def examples(self, limit: int | None = None) -> list[Example]:
        """The evaluation examples, in a fixed order (first `limit` of them)."""
        ...

    def canvas(self, example: Example, model: MaskedLM, gen_length: int) -> Canvas:
        """Token layout for `example`: prompt ids and a region of `gen_length` ids."""
        ...

    def score(self, example: Example, region_text: str, answer_text: str | None) -> Score:
        """Extract the answer from the decoded region (and answer block, if any) and score it."""
        ...


@runtime_checkable
class Trainable(Task, Protocol):
    """A task the tiny model can be trained on (`nclb train`): an endless seeded stream of
    training examples and the gold region of each."""

    def train_stream(self, seed: int) -> Iterator[Example]:
        """Training examples drawn from `seed`, never the held-out test items."""
        ...

    def gold_region(self, example: Example, model: MaskedLM, gen_length: int) -> list[int]:
        """The region's token ids of the example's gold output (what training teaches)."""
        ...


@runtime_checkable
class HasReference(Task, Protocol):
    """A task whose examples carry a reference solution (gsm8k, math): gold traces for
    fine-tuning and the answer block's gold text."""

    def reference_output(self, example: Example) -> tuple[str, str | None]:
        """The reference reasoning and answer-block text (None without an answer block)."""
        ...


@runtime_checkable
class ChecksTrace(Task, Protocol):
    """A task that can verify a scratchpad step by step (arith, chain)."""

    def check_trace(self, text: str, prompt: str | None = None) -> bool:
        """Whether every step of the scratchpad in `text` recomputes (and, with `prompt`, uses
        exactly the problem's operations)."""
        ...


def class_implements(cls: type, capability: type) -> bool:
    """Whether a task class has every method a capability protocol (Trainable, HasReference,
    ChecksTrace) declares beyond Task's: isinstance() needs an instance, and issubclass() does
    not take protocols with data members."""
    declared = [n for n, v in vars(capability).items() if callable(v) and not n.startswith("_")]
    return all(callable(getattr(cls, name, None)) for name in declared)


def task_arguments(
    task: str, cfg: dict[str, Any], keys: tuple[str, ...], checked: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The constructor arguments of a task from its config: the `keys` it reads that are set
    (None leaves the default). `checked`: keys the task's from_config validates itself (not
    passed on). A key that neither the task nor the run settings read is a UserError naming
    it, so a setting that would do nothing never starts a run."""
    known = {*keys, *checked, *RUN_KEYS}
    unread = sorted(set(cfg) - known)
    if unread:
        raise UserError(f"task.{unread[0]} is not a key of task={task}; its keys: {sorted(known)}")
    return {key: cfg[key] for key in keys if cfg.get(key) is not None}


def dataclass_task(cls: type, cfg: dict[str, Any]) -> Any:
    """A dataclass task built from its config: every field of `cls` is a key; any other key is
    a ValueError that lists the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"unknown {cls.name} task keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**dict(cfg))
