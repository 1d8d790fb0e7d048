"""From a composed `nclb run` config to validated run settings; one-line errors for bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nclb.errors import UserError
from nclb.registry import lookup
from nclb.sampler import Decoder, SamplerConfig, build_decoder
from nclb.sampler.policy import config_params

SHORTHANDS = {"lam": "lam", "k": "k"}
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunSettings:
    """Everything a run needs, validated."""

    model: dict[str, Any]
    task: dict[str, Any]
    decoder: Decoder
    decoder_cfg: dict[str, Any]
    sampler: SamplerConfig
    gen_length: int
    limit: int | None
    batch_size: int
    seed: int
    out_dir: Path
    resume: bool
    log_trajectory: bool


def positive_int(key: str, value: Any, allow_none: bool = False) -> int | None:
    """`value` as an int >= 1, or a UserError naming `key`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer >= 1" + (" or null" if allow_none else "")
        raise UserError(f"{key}={value!r} must be {allowed}")
    return value


def non_negative_int(key: str, value: Any) -> int:
    """`value` as an int >= 0, or a UserError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{key}={value!r} must be an integer >= 0")
    return value


def number(key: str, value: Any, meaning: str = "", allow_none: bool = False) -> Any:
    """`value` unchanged when it is a finite number >= 0 (None passes when `allow_none`), else a
    UserError naming `key`; `meaning` is added to the message (e.g. "an entropy in nats")."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        allowed = "a finite number >= 0" + (" or null" if allow_none else "")
        raise UserError(f"{key}={value!r} must be {allowed}" + (f" ({meaning})" if meaning else ""))
    return value


def flag(key: str, value: Any) -> bool:
    """`value` as a bool: only true or false (YAML's own words), or a UserError naming `key`."""
    if not isinstance(value, bool):
        raise UserError(f"{key}={value!r} must be true or false")
    return value


def first_set(*values: Any) -> Any:
    """The first value that is not None (0 counts as set), else None."""
    return next((v for v in values if v is not None), None)


def decoder_params(
    cfg: dict[str, Any], decoder: type[Decoder], gen_length: int, block: int
) -> dict[str, Any]:
    """The constructor parameters of the decoder group's class `decoder`: its config keys with
    the top-level shorthands (lam, k) applied."""
    params = {key: val for key, val in cfg["decoder"].items() if key != "name"}
    name = cfg["decoder"]["name"]
    for short, key in SHORTHANDS.items():
        if cfg.get(short) is None:
            continue
        if key not in params:
            raise UserError(
                f"{short}={cfg[short]} does not apply to decoder={name} "
                f"(its keys: {sorted(params)}); pick a decoder that takes {short}"
            )
        params[key] = cfg[short]
    if "lam" in params:
        params["lam"] = number("lam", params["lam"], "an entropy in nats")
    return config_params(decoder, params, gen_length, block)


def resolve(cfg: dict[str, Any]) -> RunSettings:
    """Validate a composed run config and apply the shorthands (lam, k, gamma, block, gen_length).

    gen_length: the top-level value, else the model's own (the reference model needs room for
    whole solutions), else the task's. A model's answer_length likewise replaces the task's, for
    tasks that have an answer block.
    """
    task = dict(cfg["task"])
    gen_length = positive_int(
        "gen_length",
        first_set(cfg.get("gen_length"), cfg["model"].get("gen_length"), task.get("gen_length")),
    )
    block = positive_int("block", first_set(cfg.get("block"), task.get("block"), gen_length))
    task["gen_length"], task["block"] = gen_length, block
    if task.get("answer_length") and cfg["model"].get("answer_length"):
        task["answer_length"] = positive_int("model.answer_length", cfg["model"]["answer_length"])
    decoder_class = lookup("decoder", cfg["decoder"]["name"])
    params = decoder_params(cfg, decoder_class, gen_length, block)
    try:
        decoder = build_decoder(decoder_class, **params)
    except TypeError as err:
        raise UserError(f"decoder={cfg['decoder']['name']}: {err}") from None
    sampler = SamplerConfig(
        block=block,
        temperature=float(number("temperature", cfg.get("temperature", 0.0), "0 = argmax")),
        gamma=number("gamma", cfg.get("gamma"), "an entropy in nats; null = off", allow_none=True),
        exit_stat=cfg.get("exit_stat", "mean"),
        stop_on_eos=flag("stop_on_eos", cfg.get("stop_on_eos", False)),
    )
    if sampler.gamma is not None and not task.get("answer_length"):
        raise UserError(
            f"gamma={sampler.gamma} needs an answer block, and task={task['name']} has none; "
            "set gamma=null or use a task with the reasoning-as-infilling template"
        )
    device = str(cfg.get("device", "auto"))
    if device.split(":")[0] not in DEVICES:
        raise UserError(f"device={device!r} must be one of auto, cpu, cuda, cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(
                f"device={device} requested but no CUDA GPU is visible; use device=cpu or device=auto"
            )
    model = dict(cfg["model"])
    model["device"] = device if device != "auto" else model.get("device", "auto")
    return RunSettings(
        model=model,
        task=task,
        decoder=decoder,
        decoder_cfg={"name": cfg["decoder"]["name"], **params},
        sampler=sampler,
        gen_length=gen_length,
        limit=positive_int("limit", cfg.get("limit"), allow_none=True),
        batch_size=positive_int("batch_size", cfg.get("batch_size", 1)),
        seed=non_negative_int("seed", cfg.get("seed", 0)),
        out_dir=Path(cfg.get("out_dir", "outputs/runs")),
        resume=flag("resume", cfg.get("resume", True)),
        log_trajectory=flag("log_trajectory", cfg.get("log_trajectory", False)),
    )
