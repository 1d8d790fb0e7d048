"""One registry of the named parts a config picks: decoders, tasks, model families and table
builders. A part registers itself where it is defined:

    @register("decoder", "med")
    class MED: ...

The built-in parts are found by importing every module of their package (DEFAULT_PACKAGES);
parts defined elsewhere are imported from $NCLB_PLUGINS (nclb.plugins), so a new part needs no
edit to nclb.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from nclb.errors import UserError
from nclb.plugins import load_plugins

T = TypeVar("T")
# kind -> the modules (and packages, whose every module is imported) defining its built-in parts
DEFAULT_PACKAGES = {
    "decoder": ("nclb.sampler.decoders",),
    "task": ("nclb.tasks",),
    "model": ("nclb.models.families",),
    "table": ("nclb.tables",),
}
ENTRIES: dict[str, dict[str, Any]] = {kind: {} for kind in DEFAULT_PACKAGES}
LOADED: set[str] = set()


def register(kind: str, name: str) -> Callable[[T], T]:
    """A decorator that registers a class or function as the `kind` part called `name`."""
    if kind not in ENTRIES:
        raise ValueError(f"unknown registry kind {kind!r}; one of {sorted(ENTRIES)}")

    def add(part: T) -> T:
        known = ENTRIES[kind].get(name)
        if known is not None and qualified_name(known) != qualified_name(part):
            raise ValueError(f"{kind} {name!r} is registered twice: {known} and {part}")
        ENTRIES[kind][name] = part
        return part

    return add


def qualified_name(part: Any) -> str:
    """module.name of a registered part (a module loaded twice registers the same name)."""
    return f"{getattr(part, '__module__', '')}.{getattr(part, '__qualname__', repr(part))}"


def lookup(kind: str, name: Any) -> Any:
    """The `kind` part called `name`, or a one-line UserError listing the choices."""
    load(kind)
    if name not in ENTRIES[kind]:
        raise UserError(f"{kind}={name!r} is unknown; choose one of {names(kind)}")
    return ENTRIES[kind][name]


def names(kind: str) -> list[str]:
    """The registered names of a kind, sorted."""
    load(kind)
    return sorted(ENTRIES[kind])


def entries(kind: str) -> dict[str, Any]:
    """Every registered part of a kind, by name."""
    load(kind)
    return dict(ENTRIES[kind])


def load(kind: str) -> None:
    """Import the built-in modules of `kind` and the plugins (each once)."""
    if kind not in LOADED:
        LOADED.add(kind)
        for name in DEFAULT_PACKAGES[kind]:
            package = importlib.import_module(name)
            for module in pkgutil.iter_modules(getattr(package, "__path__", [])):
                importlib.import_module(f"{name}.{module.name}")
    load_plugins()
