"""`nclb COMMAND --help`: a command's keys, defaults and meanings, read from its YAML config.

The configs under configs/ document each key with a comment on its line; this module turns
those comments into help text, so the help and the configs cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from nclb.config.paths import config_dir, group_options

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")
SKIPPED_BLOCKS = ("defaults", "hydra")


@dataclass(frozen=True)
class KeyDoc:
    """One config key: dotted name, default as written in the YAML, and its comment."""

    key: str
    default: str
    comment: str
    section: bool = False


def split_comment(text: str) -> tuple[str, str]:
    """(value, comment) of the part of a YAML line after `key:`; a `#` inside quotes is text."""
    quote = None
    for i, char in enumerate(text):
        if char in "\"'" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or text[i - 1] in " \t"):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def key_docs(path: Path) -> list[KeyDoc]:
    """The keys of a root config file in order (nested ones dotted: metrics.kl), without the
    `defaults` list and the `hydra` block."""
    docs: list[KeyDoc] = []
    stack: list[tuple[int, str]] = []  # (indent, name) of the open sections
    skipping = False
    for line in path.read_text().splitlines():
        match = KEY_LINE.match(line)
        if match is None:
            continue
        indent, key = len(match["indent"]), match["key"]
        if indent == 0:
            skipping = key in SKIPPED_BLOCKS
        if skipping:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = split_comment(match["rest"])
        dotted = ".".join([name for _, name in stack] + [key])
        if value == "":
            stack.append((indent, key))
        docs.append(KeyDoc(dotted, value, comment, section=value == ""))
    return docs


def shared_blocks(path: Path) -> list[Path]:
    """The shared blocks (configs/common/*.yaml) a root config includes in its defaults list."""
    data = yaml.safe_load(path.read_text()) or {}
    items = [item for item in data.get("defaults") or [] if isinstance(item, str)]
    return [config_dir() / f"{item}.yaml" for item in items if item.startswith("common/")]


def all_key_docs(path: Path) -> list[KeyDoc]:
    """The keys a root config sets, with those of the shared blocks it includes first; a key
    the root sets again keeps the root's default and comment."""
    docs: dict[str, KeyDoc] = {}
    for file in [*shared_blocks(path), path]:
        docs.update((doc.key, doc) for doc in key_docs(file))
    return list(docs.values())


def header_lines(path: Path) -> list[str]:
    """The comment lines at the top of a config file, without the `# ` marker."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def default_groups(path: Path) -> list[tuple[str, str]]:
    """(group, default option) pairs of the config's `defaults` list (hydra overrides aside)."""
    data = yaml.safe_load(path.read_text()) or {}
    pairs = []
    for item in data.get("defaults") or []:
        if isinstance(item, dict):
            (group, option), *_ = item.items()
            if not group.startswith("override"):
                pairs.append((group, str(option)))
    return pairs


def command_help(command: str, config_name: str, purpose: str, examples: list[str]) -> str:
    """The help text of a Hydra-driven command: purpose, groups, keys (one line each), examples."""
    path = config_dir() / f"{config_name}.yaml"
    out = [f"nclb {command}: {purpose}", "", f"usage: nclb {command} [-m] [key=value ...]"]
    groups = default_groups(path)
    if groups:
        out += ["", "groups (pick one option; their own keys are set as GROUP.KEY=value):"]
        chosen = [f"{group}={option}" for group, option in groups]
        pad = max(len(text) for text in chosen)
        for text, (group, _) in zip(chosen, groups, strict=True):
            out.append(f"  {text:<{pad}}  options: {', '.join(group_options(group))}")
    blocks = [p for p in shared_blocks(path) if key_docs(p)]  # the ones that set keys
    sources = [f"configs/{p.relative_to(config_dir())}" for p in [path, *blocks]]
    out += ["", f"keys (default, meaning; from {', '.join(sources)}):"]
    docs = all_key_docs(path)
    width = min(28, max(len(f"{d.key}={d.default}") for d in docs) + 2)
    for doc in docs:
        name = f"{doc.key}.*" if doc.section else f"{doc.key}={doc.default}"
        out.append(f"  {name:<{width}} {doc.comment}".rstrip())
    out += [
        "",
        "-m runs every combination of comma-separated values (a=1,2 b=x,y); "
        "hydra/launcher=local|slurm runs them in parallel.",
        "",
        "examples:",
    ]
    shown = [line for line in header_lines(path) if line.startswith("nclb ")]
    out += [f"  {line}" for line in dict.fromkeys(examples + shown)]
    return "\n".join(out)


def grid_titles() -> list[tuple[str, str]]:
    """(name, title) of every grid in configs/grids/."""
    rows = []
    for path in sorted((config_dir() / "grids").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        rows.append((path.stem, str(data.get("title", ""))))
    return rows
