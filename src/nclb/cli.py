"""The `nclb` command: `nclb run|train ... key=value ...` over Hydra configs.

Overrides are checked before anything runs (every combination of a sweep), so a typo fails
at once with one line naming the key and what is allowed.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from collections.abc import Callable
from typing import Any

from nclb.config import GROUPS, config_dir, group_options
from nclb.errors import UserError

USAGE = """usage: nclb COMMAND [-m] [key=value ...]

commands:
  run     decode a task with a model and decoder; logs records.jsonl and summary.json
  train   train the embedded tiny model (nclb train task=arith)
  posterior    posterior reasoning traces p(r | c, a) as JSONL (docs/posterior.md)
  finetune     fine-tune a model on traces, MDLM loss on the response (LoRA option)
  trace-score  partial-trace answer scores vs final correctness (Figure 4), CSV
  lm-eval      lm-evaluation-harness tasks decoded by nclb's sampler (pip install 'nclb[lmeval]')
  table   a paper table/figure from logged runs (nclb table table2 model=tiny)
  show    one example's decoding order as a picture and coloured text (nclb show RUN_DIR)

examples:
  nclb run decoder=med lam=0.2 limit=20
  nclb run -m decoder=med lam=0.05,0.1,0.2,0.4 gamma=null,0.1,0.3"""


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


# configs/hydra/launcher/<name>.yaml -> (the Hydra plugin module, its pip package)
LAUNCHER_PLUGINS = {
    "local": ("hydra_joblib_launcher", "hydra-joblib-launcher"),
    "slurm": ("hydra_submitit_launcher", "hydra-submitit-launcher"),
}


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
            cfg = hydra_compose(config_name, overrides=overrides)
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


def validate(config_name: str, overrides: list[str], check: Callable[[dict], Any]) -> None:
    """Compose and check every combination of the sweep before any job starts."""
    for combo in expand_sweeps(overrides):
        check_groups(combo)
        check(compose(config_name, combo))


def hydra_job(config_name: str, job: Callable[[dict], Any], argv: list[str]) -> None:
    """Run `job` under Hydra's own main (so -m sweeps and launchers work)."""
    import hydra
    from omegaconf import OmegaConf

    def entry(cfg) -> None:
        data = OmegaConf.to_container(cfg, resolve=True)
        data.pop("hydra", None)
        try:
            job(data)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base=None)(entry)()


def run_command(argv: list[str]) -> None:
    """`nclb run`."""
    from nclb.config import resolve
    from nclb.kl import kl_options
    from nclb.runner import run

    def check(cfg: dict) -> None:
        kl_options(cfg.get("metrics"), resolve(cfg).sampler)

    validate("config", [a for a in argv if not a.startswith("-")], check)
    hydra_job("config", run, argv)


def train_command(argv: list[str]) -> None:
    """`nclb train`."""
    from nclb.train import train

    overrides = [a for a in argv if not a.startswith("-") and not a.startswith("model=")]
    validate("train", overrides, lambda cfg: None)
    hydra_job("train", lambda cfg: train(cfg), overrides + [a for a in argv if a.startswith("-")])


def table_command(argv: list[str]) -> None:
    """`nclb table NAME`: run a paper grid's missing runs, write results/NAME.{md,csv,tex}."""
    from nclb.tables.make import table_command as make

    make(argv)


def _hydra_command(config_name: str, module: str, function: str, argv: list[str]) -> None:
    """Validate the overrides (module.validate_config, for every sweep combination), then run
    module.function under Hydra."""
    import importlib

    mod = importlib.import_module(module)
    job, check = getattr(mod, function), getattr(mod, "validate_config", lambda cfg: None)
    validate(config_name, [a for a in argv if not a.startswith("-")], check)
    hydra_job(config_name, job, argv)


def posterior_command(argv: list[str]) -> None:
    """`nclb posterior`."""
    _hydra_command("posterior", "nclb.posterior", "posterior", argv)


def finetune_command(argv: list[str]) -> None:
    """`nclb finetune`."""
    _hydra_command("finetune", "nclb.finetune", "finetune", argv)


def trace_score_command(argv: list[str]) -> None:
    """`nclb trace-score`."""
    _hydra_command("trace_score", "nclb.trace_score", "trace_score", argv)


def lm_eval_command(argv: list[str]) -> None:
    """`nclb lm-eval`: lm-eval's simple_evaluate with nclb's sampler as the model."""
    from nclb.lmeval.command import lm_eval_command as evaluate

    evaluate(argv)


def show_command(argv: list[str]) -> None:
    """`nclb show RUN_DIR [id=...] [--compare RUN_DIR2]`: one example's decoding order."""
    from nclb.show import show_command as show

    show(argv)


COMMANDS = {"run": run_command, "train": train_command, "table": table_command}
COMMANDS["show"] = show_command
COMMANDS |= {
    "posterior": posterior_command,
    "finetune": finetune_command,
    "trace-score": trace_score_command,
    "lm-eval": lm_eval_command,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nclb` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; choose one of {sorted(COMMANDS)}", file=sys.stderr
        )
        raise SystemExit(2)
    try:
        COMMANDS[command](rest)
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # Ctrl-C: the runner said what was kept
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        if os.environ.get("NCLB_DEBUG"):
            raise
        raise SystemExit(2) from None
