"""Model configs to MaskedLM instances."""

from __future__ import annotations

from pathlib import Path

from nclb.config.paths import tiny_checkpoint
from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.tasks.base import Example, Task

MODELS = ("dream", "llada", "oracle", "reference", "tiny")


def oracle_model(cfg: dict, gen_length: int) -> MaskedLM:
    """The exact palindrome oracle; its sequence length must be the generation length."""
    from nclb.models.oracle import OracleModel, palindrome_joint

    if gen_length != cfg["length"]:
        raise UserError(
            f"gen_length={gen_length} but the oracle's sequences have length {cfg['length']}; "
            f"set gen_length={cfg['length']}"
        )
    return OracleModel(palindrome_joint(cfg["content"], cfg["length"], cfg["seed"]))


RUN_KEYS = ("tasks", "gen_length", "answer_length", "confidence")


def loader_keys(cfg: dict) -> dict:
    """The model config without the keys that steer the run rather than the loader."""
    return {key: val for key, val in cfg.items() if key not in RUN_KEYS}


def tiny_model(cfg: dict, task: Task) -> MaskedLM:
    """The embedded tiny MDLM trained for `task` (checkpoints/tiny-<task> unless model.path)."""
    from nclb.models.hf import load_hf_model

    trained = list(cfg.get("tasks", []))
    if not cfg.get("path") and task.name not in trained:
        raise UserError(
            f"the tiny model was trained on {trained}, not task={task.name}; use one of those "
            "tasks, or model=llada / model=dream / model=reference for the paper's benchmarks"
        )
    path = Path(cfg.get("path") or tiny_checkpoint(task.name))
    return load_hf_model({**loader_keys(cfg), "path": str(path)})


def build_model(cfg: dict, task: Task, examples: list[Example], gen_length: int) -> MaskedLM:
    """The model named by cfg['name']. The reference model needs the task and its examples."""
    name = cfg.get("name")
    if name == "oracle":
        return oracle_model(cfg, gen_length)
    if name == "tiny":
        return tiny_model(cfg, task)
    if name in ("llada", "dream"):
        from nclb.models.hf import load_hf_model

        return load_hf_model(loader_keys(cfg))
    if name == "reference":
        from nclb.models.reference import ReferenceModel

        return ReferenceModel.for_task(
            task, examples, gen_length, confidence=float(cfg.get("confidence", 50.0))
        )
    raise UserError(f"model={name!r} is unknown; choose one of {list(MODELS)}")
