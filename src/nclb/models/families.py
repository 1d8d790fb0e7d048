"""The model families a config can name (model.family, else model.name), each registered with
how it is built: (model config, nclb.types.ModelContext) -> MaskedLM."""

from __future__ import annotations

from pathlib import Path

from nclb.errors import UserError
from nclb.locations import shipped_dir
from nclb.models.base import MaskedLM
from nclb.registry import register
from nclb.types import ModelContext

# Model config keys that steer the run rather than the loader.
RUN_KEYS = ("tasks", "gen_length", "answer_length", "confidence")


def tiny_checkpoint(task_name: str) -> Path:
    """The shipped tiny model trained on `task_name`: checkpoints/tiny-<task>."""
    return shipped_dir("checkpoints") / f"tiny-{task_name}"


def model_path(cfg: dict, task_name: str) -> str | Path | None:
    """Where a model config's weights come from: model.path (a folder or a hub id), else the
    shipped tiny checkpoint of the task for model=tiny; None for the models without one."""
    if cfg.get("path"):
        return cfg["path"]
    return tiny_checkpoint(task_name) if cfg.get("name") == "tiny" else None


def serves_cache(cfg: dict) -> bool | None:
    """Whether the model a config names can keep a key/value cache: a Hugging Face family's
    answer (it has nclb's cached forward), False for the oracle and reference models, None for
    a plugin family (known once it is loaded)."""
    from nclb.models.hf import FAMILIES

    name = cfg.get("family") or cfg.get("name")
    if name in FAMILIES:
        return FAMILIES[name].forward is not None
    return False if name in ("oracle", "reference") else None


def loader_keys(cfg: dict) -> dict:
    """The model config without the keys that steer the run rather than the loader."""
    return {key: val for key, val in cfg.items() if key not in RUN_KEYS}


@register("model", "oracle")
def oracle_model(cfg: dict, context: ModelContext) -> MaskedLM:
    """The exact palindrome oracle; its sequence length must be the generation length."""
    from nclb.models.oracle import OracleModel, palindrome_joint

    if context.gen_length != cfg["length"]:
        raise UserError(
            f"gen_length={context.gen_length} but the oracle's sequences have length {cfg['length']}; "
            f"set gen_length={cfg['length']}"
        )
    return OracleModel(palindrome_joint(cfg["content"], cfg["length"], cfg["seed"]))


@register("model", "tiny")
def tiny_model(cfg: dict, context: ModelContext) -> MaskedLM:
    """The embedded tiny MDLM trained for the run's task (checkpoints/tiny-<task> unless
    model.path)."""
    from nclb.models.hf import load_hf_model

    trained = list(cfg.get("tasks", []))
    if not cfg.get("path") and context.task_name not in trained:
        raise UserError(
            f"the tiny model was trained on {trained}, not task={context.task_name}; use one of those "
            "tasks, or model=llada / model=dream / model=reference for the paper's benchmarks"
        )
    return load_hf_model({**loader_keys(cfg), "path": str(model_path(cfg, context.task_name))})


@register("model", "llada")
@register("model", "dream")
def hub_model(cfg: dict, context: ModelContext) -> MaskedLM:
    """A Hugging Face checkpoint (LLaDA, Dream) through its remote code (nclb.models.hf)."""
    from nclb.models.hf import load_hf_model

    return load_hf_model(loader_keys(cfg))


@register("model", "reference")
def reference_model(cfg: dict, context: ModelContext) -> MaskedLM:
    """The byte-level model that predicts each example's reference output."""
    from nclb.models.reference import ReferenceModel

    if context.references is None:
        raise UserError(
            f"model=reference predicts reference solutions, and task={context.task_name} has "
            "none; use a task that has them (e.g. task=gsm8k)"
        )
    confidence = float(cfg.get("confidence", 50.0))
    return ReferenceModel.for_task(
        context.references, context.examples, context.gen_length, confidence=confidence
    )
