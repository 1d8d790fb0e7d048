"""`python -m nclb.lmeval ...`: lm-eval's own command line with the `nclb` model registered.

    python -m nclb.lmeval --model nclb --model_args model=tiny,task=arith,decoder=med,lam=0.2 \\
        --tasks nclb_arith --include_path configs/lm_eval --limit 20

Every lm-eval option works; `--model_args` are nclb overrides (configs/lm_eval.yaml).
"""

from __future__ import annotations

import sys

from nclb.errors import UserError
from nclb.lmeval import require_lm_eval


def main() -> None:
    """Register the nclb model with lm-eval, then run lm-eval's command line."""
    try:
        require_lm_eval()
        from lm_eval.__main__ import cli_evaluate

        import nclb.lmeval.adapter  # noqa: F401  (registers lm-eval model `nclb`)

        cli_evaluate()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
