"""`make bench`: examples/s and tokens/s at batch 1, 8, 64; per decoder at batch 64 the NFE,
occupancy, wall / NFE ratio against k=1 and the sampler's share of step time, with and without
continuous batching; and for k=1, MED and MED + early exit with each key/value cache mode the
forward ms per row, positions computed per row and occupancy; on the embedded tiny model; writes
results/bench.md (see nclb.experiments.bench for how each number is measured)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from nclb.errors import UserError, exit_on_user_error
from nclb.experiments.bench import (
    BATCH_SIZES,
    CACHE_DECODERS,
    DECODERS,
    REFERENCE,
    Measurement,
    cache_modes,
    cache_verdict,
    load_workload,
    machine,
    measure,
    render,
    verdict,
    warm_up,
)


def measure_cache(work, modes: tuple[str, ...], decoders: list[Measurement]) -> list[Measurement]:
    """The cache rows: each of CACHE_DECODERS with each mode, batch 64, continuous batching
    (a decoder's no-cache row is its measurement above where there is one)."""
    rows = []
    for label, overrides in CACHE_DECODERS.items():
        for mode in modes:
            done = [m for m in decoders if m.label == label and m.continuous]
            if mode == "none" and done:
                m = done[0]
            else:
                m = measure(work, label, [*overrides, f"cache={mode}"], BATCH_SIZES[-1])
            print(
                f"{label:>28} cache={mode:<6}: NFE {m.mean_nfe:6.1f} acc "
                f"{m.correct / m.examples:.3f} {m.computed_per_row:6.1f} positions/row "
                f"{m.forward_ms_per_row:6.2f} ms/row occupancy {m.occupancy:.3f} "
                f"{m.examples_per_s:7.1f} ex/s",
                flush=True,
            )
            rows.append(m)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny")
    parser.add_argument(
        "--task", default="chain", help="the tiny model's reasoning task by default"
    )
    parser.add_argument("--n", type=int, default=500, help="examples per measurement")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default="results/bench.md")
    parser.add_argument(
        "--cache",
        default="none,prefix,dual",
        help="cache modes of the cache rows, comma-separated ('' for no cache rows)",
    )
    parser.add_argument("--note", action="append", default=[], help="a line for the notes")
    args = parser.parse_args(argv)
    modes = cache_modes(args.cache)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = load_workload(args.model, args.task, args.n, args.device)
    if any(mode != "none" for mode in modes) and work.model.cached_forward is None:
        raise UserError(
            f"--cache {args.cache}: model={args.model} has no key/value cache forward; "
            "pass --cache ''"
        )
    meta = machine(work.model)
    warm_up(work, modes)
    throughput = []
    for size in BATCH_SIZES:
        m = measure(work, REFERENCE, DECODERS[REFERENCE], size)
        print(
            f"batch {size:>3}: {m.examples_per_s:7.2f} ex/s {m.tokens_per_s:8.1f} tok/s "
            f"sampler {m.overhead_of_step:6.1%} of step",
            flush=True,
        )
        throughput.append(m)
    decoders = []
    for label, overrides in DECODERS.items():
        for continuous in (True, False):
            if label == REFERENCE and continuous:
                m = throughput[-1]  # the same measurement as batch 64 above
            else:
                m = measure(work, label, overrides, BATCH_SIZES[-1], continuous)
            print(
                f"{label:>26} {m.mode:>10}: NFE {m.mean_nfe:6.1f} acc "
                f"{m.correct / m.examples:.3f} occupancy {m.occupancy:.3f} "
                f"{m.examples_per_s:7.1f} ex/s sampler {m.overhead_of_step:6.1%}",
                flush=True,
            )
            decoders.append(m)
    cache = measure_cache(work, modes, decoders)
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
    text = render(meta, workload, throughput, decoders, notes, cache)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n".join(verdict(throughput, decoders) + cache_verdict(cache)))
    print(f"wrote {out}")


if __name__ == "__main__":
    exit_on_user_error(main)
