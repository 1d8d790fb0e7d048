"""The `nclb` command: `nclb run|train ... key=value ...` over Hydra configs.

Overrides are checked before anything runs (every combination of a sweep), so a typo fails
at once with one line naming the key and what is allowed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from nclb.config.compose import check_arguments, validate
from nclb.config.paths import config_dir
from nclb.errors import UserError, file_system_message
from nclb.experiments import EXPERIMENTS
from nclb.hydra_flags import (
    Arguments,
    completion_line,
    completion_query,
    flags_first,
    is_query,
    parse_arguments,
)
from nclb.plugins import search_path_overrides


def fail(message: str) -> NoReturn:
    """Print `error: message` (one line) and exit with status 2 (NCLB_DEBUG=1: re-raise)."""
    print(f"error: {message}", file=sys.stderr)
    if os.environ.get("NCLB_DEBUG"):
        raise
    raise SystemExit(2) from None


def remove_empty_job_dir() -> None:
    """Hydra makes a folder per multirun job; nclb writes into out_dir instead, so an empty one
    is removed (the sweep folder keeps Hydra's multirun.yaml)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        config = HydraConfig.get()
        if config.mode == RunMode.MULTIRUN:
            Path(config.runtime.output_dir).rmdir()  # only succeeds when empty
    except (OSError, ValueError):
        pass


def parallel_job_number() -> int | None:
    """This sweep job's number when Hydra's launcher runs several jobs at once on this machine
    (joblib with n_jobs other than 1), else None (one job at a time, SLURM, or no sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        config = HydraConfig.get()
    except ValueError:
        return None
    launcher = config.launcher or {}
    parallel = "Joblib" in str(launcher.get("_target_", "")) and launcher.get("n_jobs", 1) != 1
    return int(config.job.num) if config.mode == RunMode.MULTIRUN and parallel else None


def place_sweep_job(data: dict) -> None:
    """Give a parallel sweep job its own GPU: `device` auto/cuda -> cuda:<job number mod the
    GPU count> (nclb.runs.sharding.sweep_job_device)."""
    job = parallel_job_number()
    if job is None or str(data.get("device")) not in ("auto", "cuda"):
        return
    import torch

    from nclb.runs.sharding import sweep_job_device

    data["device"] = sweep_job_device(str(data["device"]), job, torch.cuda.device_count())


def hydra_job(config_name: str, job: Callable[[dict], Any], argv: list[str]) -> None:
    """Run `job` under Hydra's own main (so -m sweeps and launchers work), on the CPU threads
    that `threads=` asks for; bad input and file-system errors end it with one line."""
    import hydra
    from omegaconf import OmegaConf

    from nclb.threads import use_threads

    def entry(cfg) -> None:
        data = OmegaConf.to_container(cfg, resolve=True)
        data.pop("hydra", None)
        try:
            use_threads(data.get("threads"))
            place_sweep_job(data)
            job(data)
        except UserError as err:
            fail(str(err))
        except OSError as err:
            fail(file_system_message(err))
        finally:
            remove_empty_job_dir()

    sys.argv = [sys.argv[0], *flags_first(argv), *search_path_overrides()]
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base=None)(entry)()


def prints_only(config_name: str, job: Callable[[dict], Any], args: Arguments, argv: list[str]):
    """Hydra's flags that print and run nothing (-sc, --hydra-help, --cfg, --info): handed to
    Hydra after the overrides are checked, with nothing written; True when one was given."""
    if args.completion or args.hydra_help:
        hydra_job(config_name, job, [*argv, *(["hydra/hydra_help=nclb"] * args.hydra_help)])
        return True
    if args.show:
        validate(config_name, args.overrides, lambda cfg: None, writes=False)
        hydra_job(config_name, job, argv)
        return True
    return False


def run_command(argv: list[str]) -> None:
    """`nclb run`."""
    from nclb.config.settings import resolve, resolved_overrides
    from nclb.preflight import check_run
    from nclb.results import new_sweep_dir, sweep_table, write_sweep_table
    from nclb.runs.identity import run_folder
    from nclb.runs.kl import kl_options
    from nclb.runs.runner import run

    args = parse_arguments(argv)
    if args.show:  # the config shown holds what the shorthands resolve to
        shown = validate("config", args.overrides, resolved_overrides, writes=False)
        hydra_job("config", run, [*argv, *shown[0]] if len(shown) == 1 else argv)
        return
    if prints_only("config", run, args, argv):
        return
    checked: set[str] = set()  # task configs whose data was found

    def check(cfg: dict) -> Path:
        s = resolve(cfg)
        kl_options(cfg.get("metrics"), s.sampler, s.decoder)
        check_run(s, checked)
        return run_folder(s)

    folders = validate("config", args.overrides, check)
    if not args.multirun:
        hydra_job("config", run, argv)
        return
    sweep_dir = next(
        (Path(o.partition("=")[2]) for o in args.overrides if o.startswith("hydra.sweep.dir=")),
        None,
    )
    if sweep_dir is None:
        sweep_dir = new_sweep_dir(folders[0].parents[2])
        argv = [*argv, f"hydra.sweep.dir={sweep_dir}"]
    hydra_job("config", run, argv)
    rows = sweep_table(folders)
    write_sweep_table(sweep_dir, rows)
    print(f"\nthe sweep's table and multirun.yaml: {sweep_dir}")
    print_table(rows, f"{len(rows) - 1} settings:")


def print_table(rows: list[tuple[str, ...]], title: str) -> None:
    """Rows of cells (the first one the header) as aligned columns under `title`."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def train_command(argv: list[str]) -> None:
    """`nclb train`."""
    from nclb.experiments.train_tiny import train, validate_config

    argv = [a for a in argv if not a.startswith("model=")]
    args = parse_arguments(argv)
    if prints_only("train", train, args, argv):
        return
    validate("train", args.overrides, validate_config)
    hydra_job("train", train, argv)


def table_command(argv: list[str]) -> None:
    """`nclb table NAME`: run a paper grid's missing runs, write results/NAME.{md,csv,tex}."""
    from nclb.tables.make import table_command as make

    make(argv)


def experiment_command(name: str) -> Callable[[list[str]], None]:
    """`nclb NAME` for an experiment of nclb.experiments.EXPERIMENTS: validate the overrides
    (its module's validate_config, for every sweep combination), then run its function under
    Hydra."""

    def command(argv: list[str]) -> None:
        import importlib

        experiment = EXPERIMENTS[name]
        mod = importlib.import_module(experiment.module)
        job = getattr(mod, experiment.function)
        check = getattr(mod, "validate_config", lambda cfg: None)
        args = parse_arguments(argv)
        if prints_only(experiment.config, job, args, argv):
            return
        validate(experiment.config, args.overrides, check)
        hydra_job(experiment.config, job, argv)

    return command


def lm_eval_command(argv: list[str]) -> None:
    """`nclb lm-eval`: lm-eval's simple_evaluate with nclb's sampler as the model (with -m,
    each combination of the sweep in turn)."""
    from nclb.lmeval.command import lm_eval_command as evaluate

    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    sweep = len(overrides) < len(argv)
    for combo in check_arguments(overrides) if sweep else [overrides]:
        evaluate(combo)


def show_command(argv: list[str]) -> None:
    """`nclb show RUN_DIR [id=...] [--compare RUN_DIR2]`: one example's decoding order."""
    from nclb.show import show_command as show

    show(argv)


@dataclass(frozen=True)
class Command:
    """One `nclb` command: the function that runs it (on the arguments after its name), its line
    in `nclb --help`, and for a command driven by a Hydra config that config (its keys are what
    `nclb COMMAND --help` lists), what the command does and examples."""

    run: Callable[[list[str]], None]
    summary: str
    config: str | None = None
    purpose: str = ""
    examples: tuple[str, ...] = ()


COMMANDS = {
    "run": Command(
        run_command,
        "decode a task with a model and decoder; logs records.jsonl and summary.json",
        "config",
        "decode a task's examples with one model and decoder. Each finished example is appended "
        "to <out_dir>/<model>/<task>/<decoder>-<hash>/records.jsonl and summary.json describes "
        "the folder's records (accuracy, NFE); the same command again resumes.",
        (
            "nclb run limit=20                                  # tiny model, chain, k=1",
            "nclb run task=sudoku9 decoder=med lam=0.2",
            "nclb run -m decoder=med lam=0.05,0.1,0.2,0.4 gamma=null,0.1",
            "nclb run model=llada task=gsm8k decoder=med lam=0.2 device=cuda batch_size=16",
        ),
    ),
    "train": Command(
        train_command,
        "train the embedded tiny model (nclb train task=arith)",
        "train",
        "train the embedded tiny MDLM on a synthetic task; checkpoints go to out_dir/hf (copied "
        "to export_dir when done). checkpoints/README.md lists each shipped checkpoint's command.",
        ("nclb train task=arith optim.minutes=30 export_dir=outputs/my-tiny-arith",),
    ),
    "posterior": Command(
        experiment_command("posterior"),
        "posterior reasoning traces p(r | c, a) as JSONL (docs/posterior.md)",
        EXPERIMENTS["posterior"].config,
        "posterior reasoning traces r ~ p(r | c, a): the gold answer is pre-filled and the "
        "reasoning infilled; writes traces.jsonl and summary.json (docs/posterior.md).",
    ),
    "finetune": Command(
        experiment_command("finetune"),
        "fine-tune a model on traces, MDLM loss on the response (LoRA option)",
        EXPERIMENTS["finetune"].config,
        "fine-tune a model with the MDLM loss on the response, from `nclb posterior` traces "
        "and/or gold traces (LoRA option for the 8B models; docs/posterior.md).",
    ),
    "trace-score": Command(
        experiment_command("trace-score"),
        "partial-trace answer scores vs final correctness (Figure 4), CSV",
        EXPERIMENTS["trace-score"].config,
        "score partial reasoning traces by log p(gold answer | prompt, trace prefix) and relate "
        "them to final correctness (Figure 4); writes scores.csv and correlations.csv.",
    ),
    "lm-eval": Command(
        lm_eval_command,
        "lm-evaluation-harness tasks decoded by nclb's sampler (pip install 'nclb[lmeval]')",
        "lm_eval",
        "evaluate lm-evaluation-harness tasks with nclb's sampler as the model (needs pip install "
        "'nclb[lmeval]'); records.jsonl, summary.json and lm-eval's results JSON in one run "
        "folder; the same command again resumes. Every `nclb run` key applies too.",
        (
            "nclb lm-eval tasks=nclb_gsm8k model=reference decoder=med lam=0.2",
            "nclb lm-eval tasks=nclb_arith model=tiny decoder=med lam=0.2 limit=50",
            "nclb lm-eval tasks=arc_easy task=gsm8k task.template=plain model=llada",
        ),
    ),
    "table": Command(
        table_command, "a paper table/figure from logged runs (nclb table table2 model=tiny)"
    ),
    "show": Command(
        show_command,
        "one example's decoding order as a picture and coloured text (nclb show RUN_DIR)",
    ),
}


def usage() -> str:
    """`nclb --help`: every command with its line, and examples."""
    width = max(map(len, COMMANDS)) + 2
    lines = [f"  {name:<{width}}{command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(
        [
            "usage: nclb COMMAND [-m] [key=value ...]",
            "",
            "commands:",
            *lines,
            "",
            "examples:",
            "  nclb run decoder=med lam=0.2 limit=20",
            "  nclb run -m decoder=med lam=0.05,0.1,0.2,0.4 gamma=null,0.1,0.3",
        ]
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the runner keeps what finished and says so."""


def on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into Terminated (a KeyboardInterrupt) in the main thread."""
    raise Terminated


def table_help() -> str:
    """`nclb table --help`: the usage and every grid in configs/grids/ with its title."""
    from nclb.confighelp import grid_titles
    from nclb.tables.make import USAGE as TABLE_USAGE

    grids = grid_titles()
    width = max(len(name) for name, _ in grids)
    lines = [f"  {name:<{width}}  {title}" for name, title in grids]
    return "\n".join([TABLE_USAGE, "", "grids (configs/grids/NAME.yaml):", *lines])


def command_help_text(command: str) -> str:
    """The --help text of a command."""
    from nclb.confighelp import command_help

    if command == "table":
        return table_help()
    spec = COMMANDS[command]
    return command_help(command, spec.config, spec.purpose, list(spec.examples))


def leave_process_group() -> None:
    """Under torchrun: wait for the other ranks before this one exits."""
    if "WORLD_SIZE" in os.environ:
        from nclb.runs.sharding import leave

        leave()


def complete(argv: list[str]) -> None:
    """`nclb -sc ...`: install=bash|fish (and uninstall) print Hydra's completion script for
    `nclb`; query=... (what that script runs) completes the command name, then the command's
    own key=value overrides from its config."""
    if not is_query(argv):
        hydra_job("config", lambda cfg: None, argv)
        return
    command, line = completion_query(list(COMMANDS), completion_line())
    config = COMMANDS[command].config if command in COMMANDS else None
    if command is None:
        print(line.replace(" ", "\n") if "query=fish" in argv else line)
    elif config is not None:
        os.environ["COMP_LINE"] = line
        hydra_job(config, lambda cfg: None, argv)


def version() -> str:
    """`nclb --version`: nclb's version and Hydra's."""
    import hydra

    from nclb import __version__

    return f"nclb {__version__} (Hydra {hydra.__version__})"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nclb` console script (output cut short by a closed pipe, as in
    `nclb --help | head`, ends quietly)."""
    try:
        dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None


def dispatch(argv: list[str]) -> None:
    """Run the command that `argv` names."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("--version", "-V"):
        print(version())
        return
    command, rest = argv[0], argv[1:]
    if command in ("-sc", "--shell-completion"):
        return complete(argv)
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; choose one of {sorted(COMMANDS)}", file=sys.stderr
        )
        raise SystemExit(2)
    has_help = COMMANDS[command].config is not None or command == "table"
    if has_help and ({"-h", "--help", "help"} & set(rest)):
        print(command_help_text(command))
        return
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        COMMANDS[command].run(rest)
        leave_process_group()
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the runner said what was kept
        raise SystemExit(143 if isinstance(err, Terminated) else 130) from None
    except BrokenPipeError:
        raise
    except UserError as err:
        fail(str(err))
    except OSError as err:
        fail(file_system_message(err))
