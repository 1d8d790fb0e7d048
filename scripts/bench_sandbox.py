"""Benchmark: HumanEval scoring beside the decode loop, workers=4 against workers=1.

32 completions that each run into the sandbox timeout are scored through the same path as
`nclb run` (HumanEvalTask.score inside nclb.tasks.scoring_pool.ScoringPool). For each worker
count it prints the wall time until every record is written, and the time the (simulated) decode
loop spent inside `submit` (which is all the scoring a decode step can ever wait for).

    .venv/bin/python scripts/bench_sandbox.py --timeout 1 --busy

`--busy` makes the completions spin the CPU until the timeout (`while True: pass`); without it
they sleep (the same timeout path, gentler on a shared machine). Not a test: wall times depend
on the machine.
"""

from __future__ import annotations

import argparse
import time

from nclb.tasks.humaneval import HumanEvalTask
from nclb.tasks.scoring_pool import ScoringPool

SLEEP_BODY = "    import time\n    time.sleep(3600)\n"
BUSY_BODY = "    while True:\n        pass\n"


def bench(workers: int, n: int, timeout: float, body: str, step_s: float) -> tuple[float, float]:
    """(wall seconds until all `n` records are written, seconds spent inside submit)."""
    task = HumanEvalTask(workers=workers, timeout_s=timeout)
    examples = (task.examples() * (n // 164 + 1))[:n]
    task.pool.run("x = 1", task.limits)  # not timed: starting the warm workers
    records: list[dict] = []
    pool = ScoringPool(task.scoring_workers, records.append)
    in_submit = 0.0
    start = time.perf_counter()
    for ex in examples:
        time.sleep(step_s)  # a decode step
        t0 = time.perf_counter()
        pool.submit(lambda ex=ex: {"id": ex.id, **task.score(ex, body, None).detail})
        in_submit += time.perf_counter() - t0
    pool.close()
    wall = time.perf_counter() - start
    task.close()
    statuses = {r["status"] for r in records}
    assert len(records) == n and statuses == {"timeout"}, statuses
    return wall, in_submit


def main() -> None:
    """Run both worker counts and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=1.0, help="sandbox timeout_s")
    parser.add_argument("--busy", action="store_true", help="completions spin the CPU")
    parser.add_argument("--step", type=float, default=0.001, help="simulated decode step, s")
    args = parser.parse_args()
    body = BUSY_BODY if args.busy else SLEEP_BODY
    walls = {}
    for workers in (1, 4):
        wall, in_submit = bench(workers, args.n, args.timeout, body, args.step)
        walls[workers] = wall
        print(
            f"workers={workers}: {args.n} timeouts of {args.timeout:g} s scored in {wall:.2f} s; "
            f"decode loop spent {1000 * in_submit:.1f} ms in submit "
            f"({1000 * in_submit / args.n:.2f} ms per example)"
        )
    print(f"wall time ratio workers=4 / workers=1: {walls[4] / walls[1]:.3f}")


if __name__ == "__main__":
    main()
