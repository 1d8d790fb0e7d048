"""Where the files shipped beside the code live (configs/, checkpoints/): the repository
checkout's folders, or their copies inside the installed package (a non-editable install)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]


def shipped_dir(name: str) -> Path:
    """The shipped folder `name` (configs, checkpoints): the installed package's copy
    (nclb/<name>) where there is one, else the checkout's <repo>/<name>."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else REPO_ROOT / name
