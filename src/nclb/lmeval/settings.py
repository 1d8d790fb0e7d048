"""The `nclb lm-eval` config (configs/lm_eval.yaml): composing it and checking its lm-eval keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nclb.config.compose import check_added_keys, check_key
from nclb.config.paths import GROUPS, config_dir, group_options
from nclb.errors import UserError
from nclb.lmeval import LOCAL_TASKS
from nclb.schema import Integer, from_fields, setting

ROOT = "lm_eval"


@dataclass
class HarnessOptions:
    """The lm-eval side of an evaluation."""

    tasks: list[str]
    num_fewshot: int | None = setting(None, Integer(min=0, nullable=True))
    mc_samples: int = setting(32, Integer(min=1))
    include_path: str | None = None


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """configs/lm_eval.yaml with `overrides` applied, as a plain dict (one-line errors)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        check_key(item)
        key, _, value = item.lstrip("+~").partition("=")
        if key in GROUPS and value not in group_options(key):
            raise UserError(f"{key}={value} is unknown; choose one of {group_options(key)}")
    try:
        with initialize_config_dir(str(config_dir()), version_base=None):
            cfg = compose(ROOT, overrides=overrides)
        check_added_keys(ROOT, overrides)
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(
            f"{first} (keys are listed in configs/{ROOT}.yaml and configs/config.yaml)"
        ) from None


def task_names(value: Any) -> list[str]:
    """`tasks` (a name, a comma-separated string or a list) as a list of names."""
    names = value if isinstance(value, list) else str(value or "").split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise UserError("tasks= is empty; name lm-eval task(s), e.g. tasks=nclb_gsm8k")
    return names


def layout_task(tasks: list[str]) -> str | None:
    """The nclb task behind nclb's local lm-eval tasks, when all of `tasks` share one."""
    found = {LOCAL_TASKS.get(name) for name in tasks}
    return found.pop() if len(found) == 1 and None not in found else None


def compose_evaluation(overrides: list[str]) -> dict[str, Any]:
    """The composed config; without a `task=` override, the nclb task of the local lm-eval tasks."""
    cfg = compose_config(overrides)
    if any(item.lstrip("+~").startswith("task=") for item in overrides):
        return cfg
    tasks = task_names(cfg.get("tasks"))
    task = layout_task(tasks)
    if task is None:
        raise UserError(
            f"tasks={tasks} are not one of nclb's local tasks {sorted(LOCAL_TASKS)}: name the "
            "nclb task whose layout decodes them, e.g. task=gsm8k (task.template=plain for a "
            "prompt without the answer block)"
        )
    return cfg if task == cfg["task"]["name"] else compose_config([*overrides, f"task={task}"])


def harness_options(cfg: dict[str, Any]) -> HarnessOptions:
    """The lm-eval keys of a composed config, checked."""
    return from_fields(
        HarnessOptions,
        {
            "tasks": task_names(cfg.get("tasks")),
            "num_fewshot": cfg.get("num_fewshot"),
            "mc_samples": cfg.get("mc_samples", 32),
            "include_path": cfg.get("include_path") or None,
        },
    )
