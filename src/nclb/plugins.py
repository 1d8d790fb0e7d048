"""Parts defined outside nclb, named in $NCLB_PLUGINS (entries separated by the path separator,
':' on Linux): a Python file, an importable module, or a folder. A folder's *.py files are
imported and its configs/ folder (configs/decoder/NAME.yaml, configs/task/NAME.yaml, ...) is
searched by Hydra after the repository's own configs. docs/extending.md has a worked example."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from nclb.errors import UserError

VARIABLE = "NCLB_PLUGINS"
IMPORTED: set[str] = set()


def plugin_entries() -> list[str]:
    """The entries of $NCLB_PLUGINS, in order."""
    return [entry for entry in os.environ.get(VARIABLE, "").split(os.pathsep) if entry]


def plugin_config_dirs() -> list[Path]:
    """The configs/ folders of the plugin folders (those that have one)."""
    folders = [Path(entry).expanduser() / "configs" for entry in plugin_entries()]
    return [folder for folder in folders if folder.is_dir()]


def search_path_overrides() -> list[str]:
    """The Hydra override that adds the plugins' config folders to the search path ([] if none)."""
    folders = plugin_config_dirs()
    if not folders:
        return []
    return ["hydra.searchpath=[" + ",".join(f"file://{f.resolve()}" for f in folders) + "]"]


def load_plugins() -> None:
    """Import every plugin file, module and folder's *.py files (each once)."""
    for entry in plugin_entries():
        path = Path(entry).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*.py"))
        elif entry.endswith(".py"):
            files = [path]
        else:
            import_module(entry)
            continue
        for file in files:
            import_file(file)


def import_module(name: str) -> None:
    """Import a plugin module by name once; a UserError when there is none."""
    if name in IMPORTED:
        return
    if importlib.util.find_spec(name) is None:
        raise UserError(f"{VARIABLE} names {name}, which is not a file, folder or module")
    IMPORTED.add(name)
    importlib.import_module(name)


def import_file(path: Path) -> None:
    """Import a Python file once, as the module nclb_plugin_<stem>."""
    key = str(path.resolve())
    if key in IMPORTED:
        return
    if not path.is_file():
        raise UserError(f"{VARIABLE} names {path}, which is not a file, folder or module")
    IMPORTED.add(key)
    name = f"nclb_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a class's module up here
    spec.loader.exec_module(module)
