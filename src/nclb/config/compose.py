"""From command-line overrides to composed configs: sweep expansion, group and argument checks,
Hydra composition, and the validation of every sweep combination before anything runs."""

from __future__ import annotations

import importlib.util
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nclb.config.paths import GROUPS, check_writable, config_dir, group_options
from nclb.errors import UserError
from nclb.plugins import search_path_overrides

# configs/hydra/launcher/<name>.yaml -> (the Hydra plugin module, its pip package)
LAUNCHER_PLUGINS = {
    "local": ("hydra_joblib_launcher", "hydra-joblib-launcher"),
    "slurm": ("hydra_submitit_launcher", "hydra-submitit-launcher"),
}


KEY_CHAR = re.compile(r"[A-Za-z0-9_\-]")
KEY = re.compile(r"[A-Za-z0-9_\-]+([./@][A-Za-z0-9_\-]+)*")


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Every combination of a Hydra sweep (a=1,2 b=x,y) as plain override lists."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    return [list(c) for c in itertools.product(*choices)]


def override_value(value: Any) -> str:
    """A YAML value as a Hydra override value (None -> null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def check_groups(overrides: list[str]) -> None:
    """A UserError for a group option that has no YAML file."""
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key in GROUPS and value not in group_options(key):
            raise UserError(f"{key}={value} is unknown; choose one of {group_options(key)}")
        plugin = LAUNCHER_PLUGINS.get(value) if key == "hydra/launcher" else None
        if plugin and importlib.util.find_spec(f"hydra_plugins.{plugin[0]}") is None:
            raise UserError(
                f"hydra/launcher={value} needs the {plugin[1]} package; "
                "install it with: pip install -e '.[cluster]'"
            )


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """The composed config as a plain dict (Hydra's errors turned into one line)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(config_dir()), version_base=None):
            cfg = hydra_compose(config_name, overrides=[*overrides, *search_path_overrides()])
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as err:
        text = str(err)
        if text.startswith("Could not override") or "not in struct" in text:
            key = text.split("'")[1] if "'" in text else text
            raise UserError(
                f"{key} is not a config key of `{config_name}`; check the spelling "
                f"(keys are listed in configs/{config_name}.yaml and its groups)"
            ) from None
        first = text.strip().splitlines()[0]
        raise UserError(f"{first} (check the key=value overrides; see configs/)") from None


def check_key(item: str) -> None:
    """A UserError for an override that is not key=value (Hydra's ~key deletion aside), has no
    key, or whose key has a character no config key has (Hydra's lexer would say it in its own
    words)."""
    if "=" not in item and not item.startswith("~"):
        raise UserError(
            f"{item!r} is not a key=value override; write key=value "
            "(`nclb COMMAND --help` lists the keys)"
        )
    key = item.lstrip("+~").partition("=")[0]
    if not key:
        raise UserError(f"{item!r} has no key before '='; write key=value (e.g. lam=0.2)")
    if not KEY.fullmatch(key):
        bad = next((c for c in key if not KEY_CHAR.fullmatch(c)), key[0])
        raise UserError(
            f"{item!r}: {bad!r} cannot be in a key (keys are ASCII letters, digits, _ and -, "
            "joined by . or /); check the spelling"
        )


def check_arguments(overrides: list[str]) -> list[list[str]]:
    """Every combination of the sweep; a UserError for an argument that is not key=value
    (check_key) or that Hydra cannot parse."""
    from hydra.errors import HydraException

    for item in overrides:
        check_key(item)
    try:
        return expand_sweeps(overrides)
    except HydraException as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{first} (write key=value, or key=a,b for a sweep)") from None


def check_added_keys(config_name: str, overrides: list[str]) -> None:
    """A UserError for a +key=value override that adds a top-level key `config_name` does not
    have (nothing would read it). Keys added inside a section (+task.x, +model.x) are left to
    that section's own check, which names the keys it reads."""
    added = [item for item in overrides if item.startswith("+")]
    tops = {item.lstrip("+").partition("=")[0].split(".")[0]: item for item in added}
    tops = {top: item for top, item in tops.items() if "/" not in top and top != "hydra"}
    if not tops:
        return
    base = compose(config_name, [item for item in overrides if item not in added])
    for top, item in tops.items():
        if top not in base:
            raise UserError(
                f"{item}: {top} is not a config key of `{config_name}`; check the spelling "
                f"(keys are listed in configs/{config_name}.yaml and its groups)"
            )


def check_common(cfg: dict[str, Any], writes: bool = True) -> None:
    """Checks every command shares: threads is valid, out_dir is a writable folder (when the
    command `writes`: it is created then)."""
    from nclb.threads import parse_threads

    parse_threads(cfg.get("threads"))
    if writes and cfg.get("out_dir"):
        check_writable("out_dir", Path(str(cfg["out_dir"])))


def validate(
    config_name: str, overrides: list[str], check: Callable[[dict], Any], writes: bool = True
) -> list[Any]:
    """Compose and check every combination of the sweep before any job starts; returns what
    `check` returned for each. writes=False (--cfg, --info): nothing is created."""
    results = []
    for combo in check_arguments(overrides):
        check_groups(combo)
        cfg = compose(config_name, combo)
        check_added_keys(config_name, combo)
        check_common(cfg, writes)
        results.append(check(cfg))
    return results
