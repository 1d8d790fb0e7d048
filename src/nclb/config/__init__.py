"""Configuration: where the configs live (paths), composing and checking command-line overrides
(compose), and a composed `nclb run` config resolved into validated settings (settings)."""

from nclb.config.paths import GROUPS, REPO_ROOT, config_dir, group_options, tiny_checkpoint
from nclb.config.settings import RunSettings, resolve

__all__ = [
    "GROUPS",
    "REPO_ROOT",
    "RunSettings",
    "config_dir",
    "group_options",
    "resolve",
    "tiny_checkpoint",
]
