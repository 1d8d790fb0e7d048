"""`make demo`: the embedded tiny model on its synthetic tasks with the paper's main decoders.

Runs k=1, k=2, MED lam=0.2 and early exit (where the task has an answer block) through the same
code path as `nclb run`, then prints accuracy and mean NFE per decoder.
"""

from __future__ import annotations

import argparse
import sys

from nclb.config.compose import compose
from nclb.errors import UserError
from nclb.runs.runner import run
from nclb.threads import use_threads

SETTINGS = {
    "k=1 entropy": ["decoder=ktoken", "k=1"],
    "k=2 entropy": ["decoder=ktoken", "k=2"],
    "MED lam=0.2": ["decoder=med", "lam=0.2"],
    "k=1 + exit gamma=0.1": ["decoder=ktoken", "k=1", "gamma=0.1"],
    "MED lam=0.2 + exit gamma=0.1": ["decoder=med", "lam=0.2", "gamma=0.1"],
}


def main() -> None:
    """Run the grid and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=100, help="examples per task and decoder")
    parser.add_argument("--tasks", default="chain,arith,sudoku9")
    parser.add_argument(
        "--out-dir", default="outputs/runs", help="run folders (resumed if present)"
    )
    args = parser.parse_args()
    use_threads(None)  # the one-thread default of every nclb command
    try:
        rows = grid(args)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished examples are kept in {args.out_dir}; "
            "run make demo again to continue",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(f"\n{'task':<9} {'decoder':<30} {'n':>5} {'accuracy':>9} {'mean NFE':>9}")
    for task, label, n, acc, nfe in rows:
        print(f"{task:<9} {label:<30} {n:>5} {acc:>9.3f} {nfe:>9.1f}")


def grid(args: argparse.Namespace) -> list[tuple]:
    """Run every task x decoder setting; (task, label, n, accuracy, mean NFE) per run."""
    rows = []
    for task in args.tasks.split(","):
        for label, overrides in SETTINGS.items():
            cfg = compose(
                "config",
                [
                    "model=tiny",
                    f"task={task}",
                    f"limit={args.limit}",
                    f"out_dir={args.out_dir}",
                    *overrides,
                ],
            )
            if cfg["gamma"] is not None and not cfg["task"].get("answer_length"):
                continue
            try:
                summary = run(cfg)
            except UserError as err:
                print(f"error: {err}", file=sys.stderr)
                raise SystemExit(2) from None
            rows.append((task, label, summary["n"], summary["accuracy"], summary["mean_nfe"]))
    return rows


if __name__ == "__main__":
    main()
