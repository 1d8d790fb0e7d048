"""nclb's decoders as an lm-evaluation-harness model (the optional extra `nclb[lmeval]`).

- `nclb.lmeval.adapter.NclbLM`: lm-eval's `LM` interface (registered as model `nclb`);
  generation decodes through nclb's sampler, scoring uses the MDLM likelihood estimate.
- `nclb.lmeval.command`: `nclb lm-eval ...`, which runs `lm_eval.simple_evaluate` with it.
- `python -m nclb.lmeval ...`: lm-eval's own command line with the `nclb` model registered.
- configs/lm_eval/: local lm-eval tasks over nclb's offline data (`nclb.lmeval.docs`).

Nothing here imports lm_eval at module import time except `adapter`, so the rest of nclb works
without the extra.
"""

from __future__ import annotations

from pathlib import Path

from nclb.config.paths import config_dir
from nclb.errors import UserError

INSTALL_HINT = "pip install 'nclb[lmeval]'"
# The local lm-eval tasks shipped in configs/lm_eval/ and the nclb task each one mirrors.
LOCAL_TASKS = {"nclb_arith": "arith", "nclb_gsm8k": "gsm8k", "nclb_math500": "math"}


def require_lm_eval() -> None:
    """A one-line UserError when lm-eval (the `lmeval` extra) is not installed."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise UserError(
            f"nclb lm-eval needs lm-evaluation-harness, which is not installed; run: {INSTALL_HINT}"
        ) from None


def local_task_dir() -> Path:
    """The folder of nclb's local lm-eval task YAMLs (configs/lm_eval/)."""
    return config_dir() / "lm_eval"
