"""The commands built on the run path: posterior, fine-tuning, trace scores, KL, likelihood,
training the tiny model, benchmarks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Experiment:
    """A command run from a Hydra config: configs/<config>.yaml, composed with the command
    line's overrides, is passed to `function` of `module` (after the module's validate_config,
    where it has one, checked every combination of the sweep)."""

    config: str
    module: str
    function: str


# `nclb NAME` -> the experiment it runs (nclb.cli; the table builders of nclb.tables.extras).
EXPERIMENTS = {
    "posterior": Experiment("posterior", "nclb.experiments.posterior", "posterior"),
    "finetune": Experiment("finetune", "nclb.experiments.finetune", "finetune"),
    "trace-score": Experiment("trace_score", "nclb.experiments.trace_score", "trace_score"),
}
