"""Model configs to MaskedLM instances."""

from __future__ import annotations

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.tasks.base import Example, Task


def build_model(cfg: dict, task: Task, examples: list[Example], gen_length: int) -> MaskedLM:
    """The model named by cfg['name']. The reference model needs the task and its examples."""
    name = cfg.get("name")
    if name == "oracle":
        from nclb.models.oracle import OracleModel, palindrome_joint

        if gen_length != cfg["length"]:
            raise UserError(
                f"gen_length={gen_length} but the oracle's sequences have length {cfg['length']}; "
                f"set gen_length={cfg['length']}"
            )
        return OracleModel(palindrome_joint(cfg["content"], cfg["length"], cfg["seed"]))
    raise UserError(f"model={name!r} is unknown; choose one of {sorted(MODELS)}")


MODELS = ("oracle",)
