"""Checks made before anything runs, for every combination of a sweep: the task builds from its
settings, the model's weights and the task's data are there, the generation fits the model's positions, out_dir is writable.

Each failure is a UserError with one line that says what to change, so a sweep over
`model=tiny,llada` fails on llada's missing weights before tiny's run starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nclb.config.paths import check_writable
from nclb.config.settings import RunSettings
from nclb.errors import UserError
from nclb.models.families import tiny_checkpoint

# config.json keys that hold a checkpoint's maximum sequence length (tiny, Dream | LLaDA).
MAX_POSITION_KEYS = ("max_position_embeddings", "max_sequence_length")
HF_FAMILIES = ("tiny", "llada", "dream")


def checkpoint_folder(model: dict[str, Any], task_name: str) -> Path | None:
    """The local checkpoint folder of a Hugging Face model config (tiny: checkpoints/tiny-<task>
    unless model.path; a hub id: its snapshot in the local cache); None for the models without
    weights (oracle, reference) and for hub ids that may be downloaded (local_files_only=false).
    A UserError when the weights are not there."""
    if model.get("name") not in HF_FAMILIES:
        return None
    path = model.get("path")
    if model.get("name") == "tiny" and not path:
        trained = list(model.get("tasks", []))
        if task_name not in trained:
            raise UserError(
                f"the tiny model was trained on {trained}, not task={task_name}; use one of those "
                "tasks, or model=llada / model=dream / model=reference for the paper's benchmarks"
            )
        path = tiny_checkpoint(task_name)
    if model.get("local_files_only") is False and not Path(str(path)).expanduser().is_dir():
        return None
    from nclb.models.hf import resolve_path  # one-line errors naming the download command

    folder = resolve_path(str(path), True)
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    if not weights:
        raise UserError(
            f"model.path={path}: {folder} holds no weights (*.safetensors or *.bin); "
            "download the checkpoint again or point model.path at a complete folder"
        )
    for file in folder.glob("*.safetensors"):
        check_safetensors(file)
    return folder


def check_safetensors(file: Path) -> None:
    """A UserError when a .safetensors file is cut short or its header is not readable. The
    format: an 8-byte little-endian header length, then that many bytes of JSON naming each
    tensor's data_offsets (from the end of the header), then the data."""
    problem = None
    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if size < 8 or length > size - 8:
                problem = "its header runs past the end of the file"
            else:
                header = json.loads(f.read(length))
                ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
                if 8 + length + max(ends, default=0) > size:
                    problem = "its tensor data is cut short"
    except OSError as err:
        problem = err.strerror or str(err)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        problem = "its header is not valid safetensors JSON"
    if problem:
        raise UserError(
            f"{file} is corrupt ({problem}); copy or download the checkpoint again "
            "(or retrain it with nclb train)"
        )


def max_positions(folder: Path) -> int | None:
    """The checkpoint's maximum sequence length from its config.json (None if it names none)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        raise UserError(
            f"{folder / 'config.json'} is not readable JSON; download or copy the checkpoint again"
        ) from None
    return next((config[k] for k in MAX_POSITION_KEYS if isinstance(config.get(k), int)), None)


def check_fits(s: RunSettings, folder: Path) -> None:
    """A UserError when gen_length leaves no room for a prompt in the model's positions."""
    limit = max_positions(folder)
    if limit is not None and s.gen_length >= limit:
        raise UserError(
            f"gen_length={s.gen_length} does not fit model={s.model['name']} ({folder}): it has "
            f"{limit} positions for the prompt and the generation together; set gen_length "
            f"below {limit} minus the prompt length"
        )


def check_task(task: dict[str, Any], seen: set[str]) -> None:
    """Build the task, so a bad or unread task key fails now with one line, and load one
    example of a task that reads data files (a task config with `data_dir`), so missing data
    fails now (DataError names what to set). `seen`: task configs already checked."""
    key = json.dumps(task, sort_keys=True, default=str)
    if key in seen:
        return
    from nclb.tasks.build import build_task

    built = build_task(dict(task))
    if "data_dir" in task:
        built.examples(1)
    seen.add(key)


def check_run(s: RunSettings, seen: set[str] | None = None) -> None:
    """Every pre-run check of one resolved `nclb run` combination."""
    folder = checkpoint_folder(s.model, s.task["name"])
    if folder is not None:
        check_fits(s, folder)
    check_task(s.task, set() if seen is None else seen)
    check_writable("out_dir", s.out_dir)
