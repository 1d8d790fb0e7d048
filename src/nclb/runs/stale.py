"""Records of a replaced checkpoint: a run folder's records are set aside when the model's local
weights file is newer than them (the run identity holds the model config, not the weights)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nclb.models.families import model_path
from nclb.runs.runlog import RECORDS


def weights_file(identity: dict[str, Any]) -> Path | None:
    """The local weights file of the run's model, if it has one (tiny: checkpoints/tiny-<task>
    unless model.path; a folder given as model.path for the others; hub ids: None)."""
    path = model_path(identity["model"], identity["task"]["name"])
    if not path or not Path(path).is_dir():
        return None
    files = sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin"))
    return files[0] if files else None


def set_aside_stale_records(folder: Path, identity: dict[str, Any]) -> Path | None:
    """Rename the folder's records.jsonl to records.stale-<UTC time>.jsonl when the model's local
    weights file is newer than it (a checkpoint replaced in place: the identity holds the model
    config, not the weights), so that a resumed run does not mix two models' outputs. Returns
    the new name, or None when nothing was set aside."""
    records, weights = folder / RECORDS, weights_file(identity)
    if weights is None or not records.is_file():
        return None
    if weights.stat().st_mtime <= records.stat().st_mtime:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"records.stale-{stamp}.jsonl"
    records.rename(target)
    return target
