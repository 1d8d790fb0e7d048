"""The key/value cache bench on random-weight LLaDA-8B shapes (prompt 200, generation length 256,
block 32): cache none / prefix / dual through nclb's own LLaDA forward, k=1 greedy; writes
results/bench-gpu.md (see nclb.experiments.bench_gpu for how each number is measured).

    python scripts/bench_gpu.py                       # LLaDA-8B shapes, on a CUDA GPU, bf16
    python scripts/bench_gpu.py --small --out /tmp/bench-gpu.md   # a CPU smoke test, seconds
    python scripts/bench_gpu.py --layers 4 --n 16 --batch 16      # any shape flag overrides
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields, replace
from pathlib import Path

import torch

from nclb.errors import UserError, exit_on_user_error
from nclb.experiments.bench import cache_modes
from nclb.experiments.bench_gpu import LLADA_8B, SMALL, Shapes, render, run_bench
from nclb.models.hf import resolve_device, resolve_dtype


def main(argv: list[str] | None = None) -> None:
    """Run the bench and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small shapes: runs on a CPU")
    for f in fields(Shapes):
        flag = f"--{f.name.replace('_', '-')}"
        parser.add_argument(flag, type=int, help=f"default {getattr(LLADA_8B, f.name)}")
    parser.add_argument("--n", type=int, default=8, help="canvases decoded per mode")
    parser.add_argument("--batch", type=int, default=8, help="rows in flight")
    parser.add_argument("--cache", default="none,prefix,dual", help="cache modes, comma-separated")
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    parser.add_argument(
        "--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp16 | fp32"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default="results/bench-gpu.md")
    parser.add_argument("--note", action="append", default=[], help="a line for the notes")
    args = parser.parse_args(argv)
    modes = cache_modes(args.cache)
    if not modes:
        raise UserError("--cache names no mode; give some of none,prefix,dual")
    if args.threads:
        torch.set_num_threads(args.threads)
    given = {f.name: getattr(args, f.name) for f in fields(Shapes)}
    shapes = replace(
        SMALL if args.small else LLADA_8B, **{k: v for k, v in given.items() if v is not None}
    )
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    bench = run_bench(shapes, device, dtype, args.n, args.batch, modes)
    notes = list(args.note)
    if device.type == "cpu":
        notes.append("measured on a CPU: a smoke test of the command, not the GPU figures")
    if hasattr(os, "getloadavg"):
        notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(bench, args.n, notes))
    for m, peak in bench.rows:
        print(
            f"cache={m.cache:<6} {m.passes} passes {m.forward_calls} calls "
            f"{1000 * m.forward_seconds / m.passes:8.1f} forward ms/pass "
            f"{m.computed_per_row:7.1f} positions/row {m.examples_per_s:8.3f} ex/s "
            f"peak {peak:.1f} GB",
            flush=True,
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    exit_on_user_error(main)
