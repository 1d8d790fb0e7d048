"""From a composed `nclb run` config to validated run settings; one-line errors for bad input."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nclb.config.compose import override_value
from nclb.errors import UserError
from nclb.models.families import serves_cache
from nclb.models.hf import resolve_device
from nclb.sampler import Decoder, SamplerConfig, build_decoder
from nclb.sampler.cache import CacheConfig, no_cache_error
from nclb.sampler.policy import config_params
from nclb.schema import Flag, Integer, check_fields, setting

SHORTHANDS = {"lam": "lam", "k": "k"}
POSITIVE = Integer(min=1)


@dataclass
class RunSettings:
    """Everything a run needs, validated."""

    model: dict[str, Any]
    task: dict[str, Any]
    decoder: Decoder
    decoder_cfg: dict[str, Any]
    sampler: SamplerConfig
    gen_length: int = setting(rule=POSITIVE)
    limit: int | None = setting(rule=Integer(min=1, nullable=True))
    batch_size: int = setting(rule=POSITIVE)
    seed: int = setting(rule=Integer(min=0))
    out_dir: Path
    resume: bool = setting(rule=Flag())
    log_trajectory: bool = setting(rule=Flag())

    def __post_init__(self) -> None:
        check_fields(self)


def first_set(*values: Any) -> Any:
    """The first value that is not None (0 counts as set), else None."""
    return next((v for v in values if v is not None), None)


def cache_config(cfg: dict[str, Any] | None) -> CacheConfig:
    """The `cache` group (mode, refresh) as a CacheConfig; a UserError for an unknown key."""
    cfg = dict(cfg or {})
    known = set(CacheConfig.__dataclass_fields__)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise UserError(f"cache.{unknown[0]} is not a cache key; known: {sorted(known)}")
    return CacheConfig(**cfg)


def decoder_params(cfg: dict[str, Any], gen_length: int, block: int) -> dict[str, Any]:
    """The decoder group's parameters with the top-level shorthands (lam, k) applied."""
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
    return config_params(name, params, gen_length, block)


def resolve(cfg: dict[str, Any]) -> RunSettings:
    """Validate a composed run config and apply the shorthands (lam, k, gamma, block, gen_length).

    gen_length: the top-level value, else the model's own (the reference model needs room for
    whole solutions), else the task's. A model's answer_length likewise replaces the task's, for
    tasks that have an answer block.
    """
    task = dict(cfg["task"])
    gen_length = POSITIVE.check(
        "gen_length",
        first_set(cfg.get("gen_length"), cfg["model"].get("gen_length"), task.get("gen_length")),
    )
    block = POSITIVE.check("block", first_set(cfg.get("block"), task.get("block"), gen_length))
    task["gen_length"], task["block"] = gen_length, block
    if task.get("answer_length") and cfg["model"].get("answer_length"):
        task["answer_length"] = POSITIVE.check("model.answer_length", cfg["model"]["answer_length"])
    params = decoder_params(cfg, gen_length, block)
    try:
        decoder = build_decoder(cfg["decoder"]["name"], **params)
    except TypeError as err:
        raise UserError(f"decoder={cfg['decoder']['name']}: {err}") from None
    sampler = SamplerConfig(
        block=block,
        temperature=cfg.get("temperature", 0.0),
        gamma=cfg.get("gamma"),
        exit_stat=cfg.get("exit_stat", "mean"),
        stop_on_eos=cfg.get("stop_on_eos", False),
        cache=cache_config(cfg.get("cache")),
    )
    sampler = dataclasses.replace(sampler, temperature=float(sampler.temperature))
    if sampler.cache.mode != "none" and serves_cache(cfg["model"]) is False:
        raise no_cache_error(sampler.cache.mode, f"model={cfg['model'].get('name')}")
    if sampler.gamma is not None and not task.get("answer_length"):
        raise UserError(
            f"gamma={sampler.gamma} needs an answer block, and task={task['name']} has none; "
            "set gamma=null or use a task with the reasoning-as-infilling template"
        )
    device = str(cfg.get("device", "auto"))
    resolve_device(device)
    model = dict(cfg["model"])
    model["device"] = device if device != "auto" else model.get("device", "auto")
    return RunSettings(
        model=model,
        task=task,
        decoder=decoder,
        decoder_cfg={"name": cfg["decoder"]["name"], **params},
        sampler=sampler,
        gen_length=gen_length,
        limit=cfg.get("limit"),
        batch_size=cfg.get("batch_size", 1),
        seed=cfg.get("seed", 0),
        out_dir=Path(cfg.get("out_dir", "outputs/runs")),
        resume=cfg.get("resume", True),
        log_trajectory=cfg.get("log_trajectory", False),
    )


def resolved_overrides(cfg: dict[str, Any]) -> list[str]:
    """Overrides that write what the shorthands resolve to into their sections (lam ->
    decoder.lam, gen_length and block -> task.*, device -> model.device), so the config that
    `nclb run --cfg job` shows holds the values the run uses."""
    s = resolve(cfg)
    sections = {"decoder": s.decoder_cfg, "task": s.task, "model": s.model}
    out = []
    for section, resolved in sections.items():
        for key, value in resolved.items():
            if key not in cfg[section]:
                out.append(f"++{section}.{key}={override_value(value)}")
            elif cfg[section][key] != value:
                out.append(f"{section}.{key}={override_value(value)}")
    return out
