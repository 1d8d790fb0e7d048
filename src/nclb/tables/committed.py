"""Tables and figures are made from committed code: `nclb table` refuses to write the
repository's results/ from a tree whose code (src/, configs/, scripts/, pyproject.toml) has
uncommitted changes, and stamps every other output made from such a tree."""

from __future__ import annotations

import sys
from pathlib import Path

from nclb.errors import UserError
from nclb.locations import REPO_ROOT
from nclb.runs.revision import uncommitted_code


def describe(files: list[str], shown: int = 3) -> str:
    """'src/a.py, src/b.py and 4 more files'."""
    head = ", ".join(files[:shown])
    return head + (f" and {len(files) - shown} more files" if len(files) > shown else "")


def committed_code_stamp(results: Path, allow_dirty: bool, root: Path = REPO_ROOT) -> str:
    """'' when the code is committed (or there is no git checkout). Otherwise: a UserError when
    `results` is the repository's results/ folder and not `allow_dirty`; else a loud warning on
    stderr, and the stamp returned for the outputs' provenance lines."""
    files = uncommitted_code(root)
    if not files:
        return ""
    into_repo = results.resolve() == (root / "results").resolve()
    if into_repo and not allow_dirty:
        raise UserError(
            f"{describe(files)} have uncommitted changes; commit them first so that results/ is "
            "made from a commit (or pass allow_dirty=true, or results=<another folder>)"
        )
    stamp = f"UNCOMMITTED CODE: {describe(files)}"
    print(
        f"WARNING: {describe(files)} have uncommitted changes: the tables and figures are "
        f"stamped '{stamp}' and cannot be reproduced from a commit",
        file=sys.stderr,
    )
    return stamp
