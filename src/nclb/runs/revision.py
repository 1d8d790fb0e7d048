"""The code revision that outputs are stamped with: the git commit, and whether the code that
outputs depend on has uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nclb.locations import REPO_ROOT

# What a run's or a table's outputs depend on: changes here make a revision "-dirty".
CODE_PATHS = ("src", "configs", "scripts", "pyproject.toml")


def uncommitted_code(root: Path = REPO_ROOT) -> list[str] | None:
    """The files under CODE_PATHS with uncommitted changes (untracked ones included, ignored ones
    not); None outside a git checkout. Other files (results/, README.md) do not count: they
    do not change what a run or a table computes."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line[3:] for line in out.splitlines() if line.strip()]


def git_revision() -> str:
    """The repo's commit, with '-dirty' when the code (CODE_PATHS) has uncommitted changes;
    'unknown' outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if uncommitted_code() else "")
