"""Where things live: the repository, its Hydra configs and the tiny model's checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

from nclb.plugins import plugin_config_dirs

REPO_ROOT = Path(__file__).resolve().parents[3]
GROUPS = ("model", "task", "decoder")


def config_dir() -> Path:
    """Where the Hydra configs live: $NCLB_CONFIG_DIR, else the repo's configs/."""
    return Path(os.environ.get("NCLB_CONFIG_DIR", REPO_ROOT / "configs"))


def group_options(group: str) -> list[str]:
    """The option names of a config group: the YAML files in configs/<group>/ and in the
    plugins' configs/<group>/ (nclb.plugins)."""
    folders = [config_dir(), *plugin_config_dirs()]
    return sorted({p.stem for folder in folders for p in (folder / group).glob("*.yaml")})


def tiny_checkpoint(task_name: str) -> Path:
    """The shipped tiny model trained on `task_name`: checkpoints/tiny-<task>."""
    return REPO_ROOT / "checkpoints" / f"tiny-{task_name}"
