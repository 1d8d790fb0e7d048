"""Configuration: where the configs live (paths), composing and checking command-line overrides
(compose), and a composed `nclb run` config resolved into validated settings (settings)."""

from nclb.config.paths import GROUPS, config_dir, group_options
from nclb.config.settings import RunSettings, resolve
from nclb.locations import REPO_ROOT

__all__ = [
    "GROUPS",
    "REPO_ROOT",
    "RunSettings",
    "config_dir",
    "group_options",
    "resolve",
]
