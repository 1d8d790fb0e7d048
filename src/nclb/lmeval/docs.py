"""Documents and scoring rules of nclb's local lm-eval tasks (configs/lm_eval/*.yaml).

The task YAMLs name these functions with lm-eval's `!function` tag: `custom_dataset` builds the
test split from nclb's own examples (so the data comes from nclb's data folder, never the hub, and
each context is exactly the prompt `nclb run` decodes), `process_results` scores MATH500 outputs
with lm-eval's MATH code.
"""

from __future__ import annotations

from typing import Any

from nclb.config.paths import config_dir
from nclb.tasks.build import build_task
from nclb.types import Example


def task_config(name: str) -> dict[str, Any]:
    """configs/task/<name>.yaml as a plain dict (interpolations such as NCLB_DATA_DIR resolved)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(
        OmegaConf.load(config_dir() / "task" / f"{name}.yaml"), resolve=True
    )


def doc(example: Example) -> dict[str, str]:
    """One lm-eval document: nclb's example id, prompt, gold answer and worked solution."""
    return {
        "id": example.id,
        "prompt": example.prompt,
        "answer": str(example.gold),
        "solution": str(example.meta.get("solution") or ""),
    }


def task_docs(name: str) -> dict[str, Any]:
    """{"test": Dataset} of nclb task `name`'s evaluation examples, in nclb's order."""
    import datasets

    examples = build_task(task_config(name)).examples()
    return {"test": datasets.Dataset.from_list([doc(ex) for ex in examples])}


def arith(**_: Any) -> dict[str, Any]:
    """The arith test set (lm-eval passes the task metadata as keyword arguments; unused)."""
    return task_docs("arith")


def gsm8k(**_: Any) -> dict[str, Any]:
    """The GSM8k test set from nclb's local data folder."""
    return task_docs("gsm8k")


def math500(**_: Any) -> dict[str, Any]:
    """MATH500 from nclb's local data folder."""
    return task_docs("math")


def math_results(document: dict[str, Any], results: list[str]) -> dict[str, int]:
    """lm-eval's MATH rules on one output: `exact_match` = hendrycks_math's is_equiv of the last
    \\boxed{} of the output and of the gold solution; `math_verify` = minerva_math's check
    (math-verify of the whole output against the gold solution)."""
    from lm_eval.tasks.hendrycks_math.utils import is_equiv, last_boxed_only_string, remove_boxed
    from math_verify import parse, verify

    def boxed(text: str) -> str | None:
        found = last_boxed_only_string(text)
        try:
            return remove_boxed(found) if found else None
        except AssertionError:  # lm-eval's remove_boxed reads \\boxed{...} only (not \\fbox)
            return None

    output = results[0]
    gold = boxed(document["solution"]) or document["answer"]
    prediction = boxed(output)
    exact = prediction is not None and is_equiv(prediction, gold)
    try:
        verified = bool(verify(gold=parse(document["solution"]), target=parse(output)))
    except Exception:  # math-verify raises on odd LaTeX and on timeouts: no match
        verified = False
    return {"exact_match": int(exact), "math_verify": int(verified)}
