"""Hydra's own flags on nclb's commands (--cfg, --info, -sc, -m, ...): which arguments are flags
and their values and which are overrides, and shell completion for `nclb COMMAND key=value`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from nclb.errors import UserError

# Hydra flags that would point Hydra away from the command's own config (nclb checks the
# overrides against that config before Hydra starts), or rerun a pickle nclb never writes.
UNSUPPORTED = {
    "config_path": "--config-path/-cp",
    "config_name": "--config-name/-cn",
    "config_dir": "--config-dir/-cd",
    "experimental_rerun": "--experimental-rerun",
}


@dataclass(frozen=True)
class Arguments:
    """A command's arguments read as Hydra reads them: the overrides, and the flags."""

    overrides: list[str]
    multirun: bool
    show: bool  # --cfg or --info: Hydra prints and nothing runs
    completion: bool  # -sc install=bash|query=bash|...: Hydra prints a shell script or choices
    hydra_help: bool


def parse_arguments(argv: list[str]) -> Arguments:
    """Split `argv` with Hydra's own parser; a UserError for a bad or unsupported flag, or for
    two flags Hydra does not take together."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str) -> None:
        raise UserError(f"{message} (`nclb COMMAND --hydra-help` lists Hydra's flags)")

    parser.error = error  # type: ignore[method-assign]
    args = parser.parse_intermixed_args(argv)
    for field, flag in UNSUPPORTED.items():
        if getattr(args, field):
            raise UserError(
                f"{flag} is not supported by nclb: each command has its own config; pick the "
                "command, set NCLB_CONFIG_DIR= for another config folder, or add a plugin"
            )
    modes = [
        name
        for name, on in (
            ("-m", args.multirun),
            ("--cfg", args.cfg is not None),
            ("--info", args.info is not None),
            ("-sc", args.shell_completion),
        )
        if on
    ]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)} cannot be used together; pick one")
    return Arguments(
        overrides=list(args.overrides),
        multirun=bool(args.multirun),
        show=args.cfg is not None or args.info is not None,
        completion=bool(args.shell_completion),
        hydra_help=bool(args.hydra_help),
    )


def completion_query(commands: list[str], line: str) -> tuple[str | None, str]:
    """For a shell completion query of `line` (`nclb COMMAND key=va`): the command whose config
    completes it and the line as Hydra reads it (the program name first, the command left
    out); (None, the command names that fit) while the command itself is being typed."""
    words = line.split()
    typing_command = len(words) < 2 or (len(words) == 2 and not line.endswith(" "))
    if typing_command:
        typed = words[1] if len(words) == 2 else ""
        return None, " ".join(name for name in commands if name.startswith(typed))
    rest = line.split(maxsplit=2)[2] if len(words) > 2 else ""
    return words[1], f"{words[0]} {rest}"


def completion_line() -> str:
    """The command line a shell asks to complete (COMP_LINE, set by the completion script)."""
    line = os.environ.get("COMP_LINE")
    if line is None:
        raise UserError(
            "-sc query=... is what the completion script runs; install it with "
            'eval "$(nclb -sc install=bash)"'
        )
    return line


def is_query(argv: list[str]) -> bool:
    """Whether `argv` is a shell completion query (`-sc query=bash` and the like)."""
    return any(arg.startswith("query=") for arg in argv) and bool(
        {"-sc", "--shell-completion"} & set(argv)
    )


def flags_first(argv: list[str]) -> list[str]:
    """`argv` with the flags (and their values) before the overrides, the order Hydra's own
    parser needs (`nclb run limit=2 -m lam=0.1,0.2` is then read as typed)."""
    overrides = parse_arguments(argv).overrides
    rest = list(overrides)
    flags = []
    for arg in argv:
        if rest and arg in rest:
            rest.remove(arg)
        else:
            flags.append(arg)
    return [*flags, *overrides]
