"""Check the adapter's CUDA path and time forward passes at the real LLaDA-8B / Dream-7B shape.

    python scripts/gpu_check.py                  # LLaDA-8B shape, bf16, on the visible GPU
    python scripts/gpu_check.py --family dream   # Dream-7B shape
    python scripts/gpu_check.py --small          # tiny shape: a smoke test that also runs on CPU

1. Loads a small stand-in folder through load_hf_model with device=auto, dtype=auto and checks it
   lands on CUDA in bf16 (on CPU with --small: fp32) with finite logits.
2. Builds a random-weight model of the real shape directly on the device (no weights written),
   wraps it in the same adapter and prints forward latency and tokens/s per batch size.
No real weights are needed; the timings are those of the real architecture's size, not its values.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from nclb.models.hf import HFMaskedLM, load_hf_model, resolve_device, resolve_dtype
from nclb.models.standin import (
    REAL_SIZES,
    SMALL_SIZES,
    SPECS,
    build_standin,
    in_memory_standin,
)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_load_path(family: str, device: torch.device, dtype: torch.dtype) -> None:
    """A stand-in folder through load_hf_model(device=auto, dtype=auto) lands where expected."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_standin(family, tmp, **SMALL_SIZES)
        model = load_hf_model({"family": family, "path": str(folder)})
        ids = torch.tensor([model.prompt_ids("2+2=") + [model.mask_id] * 8] * 2)
        logits = model.logits(ids)
    if model.device.type != device.type or model.dtype != dtype:
        raise SystemExit(f"load path: got {model.device} {model.dtype}, expected {device} {dtype}")
    if not torch.isfinite(logits).all():
        raise SystemExit("load path: logits are not finite")
    print(f"load path: ok ({model.device} {model.dtype}, logits {list(logits.shape)} finite)")


def time_forward(model: HFMaskedLM, ids: torch.Tensor, mask, warmup: int, reps: int) -> float:
    """Mean seconds of one adapter forward pass (logits included)."""
    for _ in range(warmup):
        model.logits(ids, mask)
    sync(model.device)
    start = time.perf_counter()
    for _ in range(reps):
        model.logits(ids, mask)
    sync(model.device)
    return (time.perf_counter() - start) / reps


def main(argv: list[str] | None = None) -> None:
    """Run the checks and print one line per batch size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(SPECS), default="llada")
    parser.add_argument("--small", action="store_true", help="tiny shape; runs on CPU too")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.small and not torch.cuda.is_available():
        raise SystemExit(
            "gpu_check: no CUDA GPU is visible; run it on a GPU machine, or pass --small for a "
            "CPU smoke test"
        )
    device = resolve_device("auto")
    dtype = resolve_dtype("auto", device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), dtype {dtype}, torch {torch.__version__}")
    if device.type == "cuda" and dtype != torch.bfloat16:
        raise SystemExit(f"dtype=auto on CUDA gave {dtype}, expected torch.bfloat16")
    check_load_path(args.family, device, dtype)

    sizes = SMALL_SIZES if args.small else REAL_SIZES[args.family]
    start = time.perf_counter()
    model = in_memory_standin(args.family, device, dtype, **sizes)
    sync(device)
    params = sum(p.numel() for p in model.model.parameters())
    print(
        f"model: {args.family} {'small' if args.small else 'real'} shape {sizes}, "
        f"{params / 1e6:,.1f}M params, built in {time.perf_counter() - start:.1f} s"
    )
    print("batch  seq  padded  latency_ms  tokens_per_s  peak_mem_gb")
    vocab = len(model.tokenizer)
    for batch in (int(b) for b in args.batches.split(",")):
        ids = torch.randint(0, vocab, (batch, args.seq), device=device)
        cases = [(False, None)]
        if model.supports_padding and batch > 1:
            mask = torch.ones_like(ids, dtype=torch.bool)
            mask[1:, : args.seq // 4] = False
            cases.append((True, mask))
        for padded, mask in cases:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = time_forward(model, ids, mask, args.warmup, args.reps)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0
            print(
                f"{batch:5d}  {args.seq:3d}  {str(padded):6s}  {seconds * 1e3:10.1f}  "
                f"{batch * args.seq / seconds:12.0f}  {peak:11.1f}"
            )


if __name__ == "__main__":
    main()
