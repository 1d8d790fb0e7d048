"""Run folders' names: the settings that determine a run's outputs (its identity) and the
folder hashed from them, so one setting always resumes one folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nclb.config.settings import RunSettings

# Model and task keys that do not change what a run computes (where the same data is read from).
MODEL_NOT_IDENTITY = ("device",)
TASK_NOT_IDENTITY = ("data_dir",)


def run_identity(
    model: dict[str, Any],
    task: dict[str, Any],
    decoder: dict[str, Any],
    sampler: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The resolved settings that determine a run's outputs (limit, batch size, device, the
    data folder and output paths are left out, so a run can be extended or resumed under other
    values)."""
    model = {k: v for k, v in model.items() if k not in MODEL_NOT_IDENTITY}
    task = {k: v for k, v in task.items() if k not in TASK_NOT_IDENTITY}
    return {"model": model, "task": task, "decoder": decoder, "sampler": sampler, "seed": seed}


def run_dir(out_dir: Path, identity: dict[str, Any]) -> Path:
    """<out_dir>/<model>/<task>/<decoder>-<hash of the identity>: one folder per distinct run."""
    blob = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    names = identity["model"]["name"], identity["task"]["name"], identity["decoder"]["name"]
    return out_dir / names[0] / names[1] / f"{names[2]}-{digest}"


def run_key(folder: Path) -> str:
    """A run folder named the same on every machine, whatever its out_dir:
    <model>/<task>/<decoder>-<hash>."""
    return "/".join(Path(folder).parts[-3:])


def settings_identity(s: RunSettings) -> dict[str, Any]:
    """The identity of resolved `nclb run` settings. log_trajectory=true joins it (records with
    every step are another run's than records without), and only then, so the folders of runs
    without trajectories keep their names."""
    identity = run_identity(s.model, s.task, s.decoder_cfg, s.sampler.identity(), s.seed)
    return {**identity, "log_trajectory": True} if s.log_trajectory else identity


def run_folder(s: RunSettings) -> Path:
    """The run folder of resolved settings (as `nclb run` names it)."""
    return run_dir(s.out_dir, settings_identity(s))
