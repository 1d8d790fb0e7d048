"""The declared dependency ranges: transformers 4.x from 4.46 to the newest 4.x release, with
the tokenizers and huggingface_hub that those releases require, and the installed versions in
range."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements() -> dict[str, Requirement]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {r.name.replace("_", "-"): r for r in map(Requirement, deps)}


@pytest.mark.parametrize(
    "name, allowed, refused",
    [
        # the oldest supported, the one .venv tests, the newest 4.x (tested by make test-newest)
        ("transformers", ["4.46.0", "4.49.0", "4.56.2", "4.57.6"], ["4.45.2", "5.0.0"]),
        # transformers 4.46-4.49 ask for tokenizers 0.20-0.21, 4.57 for 0.22-0.23
        ("tokenizers", ["0.20.3", "0.21.4", "0.22.2", "0.23.0"], ["0.19.1", "0.24.0"]),
        # transformers 4.57 asks for huggingface_hub>=0.34,<1.0
        ("huggingface-hub", ["0.26.0", "0.34.0", "0.36.2"], ["1.0.0"]),
    ],
)
def test_the_supported_ranges(name, allowed, refused):
    spec = requirements()[name].specifier
    assert [v for v in allowed if v not in spec] == []
    assert [v for v in refused if v in spec] == []


def test_the_installed_versions_are_in_range():
    for name in ("transformers", "tokenizers", "huggingface-hub"):
        assert version(name) in requirements()[name].specifier, name
