"""Where things live: the repository, its Hydra configs, and whether an output folder can be
written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nclb.errors import UserError
from nclb.locations import shipped_dir
from nclb.plugins import plugin_config_dirs

GROUPS = ("model", "task", "decoder", "cache")


def config_dir() -> Path:
    """Where the Hydra configs live: $NCLB_CONFIG_DIR, else the shipped configs/ (the
    checkout's, or the installed package's copy)."""
    return Path(os.environ.get("NCLB_CONFIG_DIR", shipped_dir("configs")))


def group_options(group: str) -> list[str]:
    """The option names of a config group: the YAML files in configs/<group>/ and in the
    plugins' configs/<group>/ (nclb.plugins)."""
    folders = [config_dir(), *plugin_config_dirs()]
    return sorted({p.stem for folder in folders for p in (folder / group).glob("*.yaml")})


def check_writable(key: str, folder: Path) -> None:
    """Create `folder` if needed and write a scratch file in it; a UserError naming `key` when
    the file system refuses (a file in the way, no permission, read-only, missing parent)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{key}={folder} is a file, not a folder; set {key}= to a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(
            f"{key}={folder} is not a writable folder ({reason}: {err.filename or folder}); "
            f"set {key}= to a folder you can write"
        ) from None
