"""`make bench`: examples/s and tokens/s at batch 1, 8, 64, the sampler's own time per step as a
fraction of the forward pass, and NFE per decoder, on the embedded tiny model; writes
results/bench.md (see nclb.bench for how each number is measured)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from nclb.bench import (
    BATCH_SIZES,
    DECODERS,
    load_workload,
    machine,
    measure,
    render,
    verdict,
    warm_up,
)
from nclb.errors import UserError


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--task", default="arith")
    parser.add_argument("--n", type=int, default=64, help="examples per measurement")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default="results/bench.md")
    parser.add_argument("--note", action="append", default=[], help="a line for the notes")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = load_workload(args.model, args.task, args.n, args.device)
    meta = machine(work.model)
    warm_up(work)
    base = ["decoder=ktoken", "k=1"]
    throughput = []
    for size in BATCH_SIZES:
        m = measure(work, "k=1", base, size)
        print(
            f"batch {size:>3}: {m.examples_per_s:7.2f} ex/s {m.tokens_per_s:8.1f} tok/s "
            f"sampler {m.overhead_of_step:6.1%} of step",
            flush=True,
        )
        throughput.append(m)
    decoders = []
    for label, overrides in DECODERS.items():
        m = measure(work, label, overrides, BATCH_SIZES[-1])
        print(f"{label:>26}: NFE {m.nfe / m.examples:6.1f} acc {m.correct / m.examples:.3f}")
        decoders.append(m)
    notes = list(args.note)
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        notes.append(f"load average at the end: {load:.2f} on {os.cpu_count()} logical cores")
        if load > 1.2 * torch.get_num_threads() and torch.device(work.model.device).type == "cpu":
            notes.append(
                "the CPU was busy with other processes while this ran: absolute speeds are "
                "lower and noisier than on an idle machine"
            )
    workload = (
        f"model={args.model}, task={args.task}, the first {args.n} test examples, "
        f"{len(work.items[0][1].region)} generated positions per example"
    )
    text = render(meta, workload, throughput, decoders, notes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n".join(verdict(throughput)))
    print(f"wrote {out}")


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
