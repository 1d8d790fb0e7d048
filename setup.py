"""Packaging beside pyproject.toml: the repository's configs/ and shipped tiny checkpoints/ are
installed inside the package, as nclb/configs and nclb/checkpoints, so a non-editable install
has them too (nclb.locations looks there first, then in the checkout)."""

from pathlib import Path

from setuptools import find_packages, setup

# package inside nclb -> the repository folder it is copied from
SHIPPED = {"nclb.configs": "configs", "nclb.checkpoints": "checkpoints"}
# the data files a package takes (the configs' subfolders: their YAML files)
FILES = {
    "nclb.configs": ["*.yaml"],
    "nclb.checkpoints": ["README.md", "tiny-*/*"],
    "nclb.tables": ["paper.yaml"],
}


def shipped_packages() -> dict[str, str]:
    """Each shipped folder and its subfolders with an importable name, as package -> folder
    (setuptools copies data files package by package)."""
    out = {}
    for name, folder in SHIPPED.items():
        out[name] = folder
        for sub in sorted(p for p in Path(folder).rglob("*") if p.is_dir()):
            parts = sub.relative_to(folder).parts
            if all(part.isidentifier() for part in parts):
                out[".".join([name, *parts])] = str(sub)
    return out


PACKAGES = shipped_packages()
setup(
    packages=[*find_packages("src"), *PACKAGES],
    package_dir={"": "src", **PACKAGES},
    package_data={**{name: ["*.yaml"] for name in PACKAGES}, **FILES},
)
