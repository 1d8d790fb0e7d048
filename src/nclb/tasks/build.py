"""A task from its config: the registered task class called cfg['name'], built and checked."""

from __future__ import annotations

from nclb.errors import UserError
from nclb.registry import entries, lookup
from nclb.schema import OneOf
from nclb.tasks.base import HasReference, Task, Trainable, class_implements
from nclb.types import Example, ModelContext


def build_task(cfg: dict) -> Task:
    """The task named by cfg['name'], built from its YAML settings (a one-line UserError for a
    value the task rejects or a key it does not read)."""
    name = cfg.get("name")
    task_class = lookup("task", name)
    try:
        return task_class.from_config(cfg)
    except (ValueError, TypeError) as err:  # a task's own check of its values
        raise UserError(f"task={name}: {err}") from None


def model_context(task: Task, examples: list[Example], gen_length: int) -> ModelContext:
    """What the model factories get from a run on `task`: its name, the generation length, the
    examples and, when the task has reference solutions, the task as their source."""
    references = task if isinstance(task, HasReference) else None
    return ModelContext(task.name, gen_length, list(examples), references)


def trainable_names() -> list[str]:
    """The registered tasks that have a training stream (nclb.tasks.base.Trainable)."""
    parts = entries("task").items()
    return sorted(name for name, cls in parts if class_implements(cls, Trainable))


def build_trainable_task(cfg: dict) -> Trainable:
    """The task named by cfg['name'], when it can be trained on (a UserError otherwise)."""
    if cfg.get("name") not in trainable_names():
        raise UserError(
            f"task={cfg.get('name')!r} cannot be trained on; choose one of {trainable_names()}"
        )
    return build_task(cfg)


SOURCES = ("examples", "train_stream")  # where `problems` draws from


def problems(task: Task, source: str, n: int | None, seed: int) -> list[Example]:
    """The problems to trace: the task's evaluation examples (`examples`, first n) or the first
    n distinct problems of its synthetic training stream (`train_stream`, seeded)."""
    if source == "examples":
        return task.examples(n)
    OneOf(options=SOURCES).check("source", source)
    if not isinstance(task, Trainable):
        raise UserError(
            f"task={task.name} has no training stream; use source=examples "
            "(and the task's own split setting, e.g. task.split=train)"
        )
    if n is None:
        raise UserError("source=train_stream needs a number of problems: set n=<count>")
    stream, seen, out = task.train_stream(seed), set(), []
    while len(out) < n:
        ex = next(stream)
        if ex.prompt in seen:
            continue
        seen.add(ex.prompt)
        out.append(Example(f"{task.name}-train{seed}-{len(out)}", ex.prompt, ex.gold, ex.meta))
    return out
