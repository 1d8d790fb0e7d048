"""`make bench`: throughput by batch size, the sampler's own time per step, NFE per decoder.

Everything is measured in one process on one model, through the same `generate` loop that
`nclb run` uses. The forward pass is timed by a wrapper around the model's `logits` (the timing
hook); the sampler's own time is the rest of the time spent inside `generate`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import torch

from nclb.cli import compose
from nclb.config import RunSettings, resolve
from nclb.models.base import MaskedLM
from nclb.models.registry import build_model
from nclb.runlog import git_revision
from nclb.runner import make_record
from nclb.sampler import Generation, generate
from nclb.tasks.base import Canvas, Example, Task
from nclb.tasks.registry import build_task

BATCH_SIZES = (1, 8, 64)
DECODERS = {
    "k=1": ["decoder=ktoken", "k=1"],
    "k=2": ["decoder=ktoken", "k=2"],
    "k=4": ["decoder=ktoken", "k=4"],
    "MED lam=0.2": ["decoder=med", "lam=0.2"],
    "AR-MED lam=0.2": ["decoder=ar_med", "lam=0.2"],
    "threshold tau=0.9": ["decoder=threshold", "decoder.tau=0.9"],
    "llada (steps=gen_length)": ["decoder=llada"],
}
GOAL_SPEEDUP = 10.0
GOAL_OVERHEAD = 0.10


class TimedModel:
    """A MaskedLM wrapper that times every forward pass (synchronising a GPU before reading
    the clock) and counts calls and rows; every other attribute is the wrapped model's."""

    def __init__(self, model: MaskedLM) -> None:
        self.model = model
        self.forward_seconds = 0.0
        self.calls = 0
        self.rows = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _sync(self) -> None:
        if torch.device(self.model.device).type == "cuda":
            torch.cuda.synchronize(self.model.device)

    def logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The wrapped model's logits, with the time they took added to `forward_seconds`."""
        self._sync()
        start = time.perf_counter()
        out = self.model.logits(ids, attention_mask)
        self._sync()
        self.forward_seconds += time.perf_counter() - start
        self.calls += 1
        self.rows += ids.shape[0]
        return out


@dataclass
class Measurement:
    """One pass over the examples with one decoder at one batch size."""

    label: str
    batch_size: int
    examples: int
    seconds: float
    forward_seconds: float
    forward_calls: int
    forward_rows: int
    gen_tokens: int
    nfe: int
    correct: int
    exits: int

    @property
    def examples_per_s(self) -> float:
        """Finished examples per wall-clock second inside the sampler."""
        return self.examples / self.seconds

    @property
    def tokens_per_s(self) -> float:
        """Generated (committed) tokens per second."""
        return self.gen_tokens / self.seconds

    @property
    def sampler_seconds(self) -> float:
        """Time inside `generate` that is not the forward pass."""
        return max(self.seconds - self.forward_seconds, 0.0)

    @property
    def forward_ms_per_row(self) -> float:
        """Forward time per row of a pass: the model's cost of one example-step."""
        return 1000 * self.forward_seconds / self.forward_rows

    @property
    def overhead_of_forward(self) -> float:
        """The sampler's own time as a fraction of the forward-pass time."""
        return self.sampler_seconds / self.forward_seconds

    @property
    def overhead_of_step(self) -> float:
        """The sampler's own time as a fraction of the whole step (forward + sampler)."""
        return self.sampler_seconds / self.seconds


@dataclass
class Workload:
    """A model, its task and the examples (with their canvases) to decode."""

    model: MaskedLM
    task: Task
    items: list[tuple[Example, Canvas]]
    base: list[str]


def settings(base: list[str], overrides: list[str]) -> RunSettings:
    """Resolved run settings for `base` + `overrides` (as `nclb run` would compose them)."""
    return resolve(compose("config", [*base, *overrides]))


def load_workload(model: str, task: str, n: int, device: str) -> Workload:
    """Build the model and the first `n` examples of the task."""
    base = [f"model={model}", f"task={task}", f"device={device}"]
    s = settings(base, [])
    t = build_task(s.task)
    examples = t.examples(n)
    m = build_model(s.model, t, examples, s.gen_length)
    items = [(ex, t.canvas(ex, m, s.gen_length)) for ex in examples]
    return Workload(model=m, task=t, items=items, base=base)


def measure(w: Workload, label: str, overrides: list[str], batch_size: int) -> Measurement:
    """Decode every example at `batch_size` (greedy, seed 0) and time it."""
    s = settings(w.base, overrides)
    timed = TimedModel(w.model)
    generator = torch.Generator().manual_seed(s.seed)
    gens: list[Generation] = []
    start = time.perf_counter()
    for i in range(0, len(w.items), batch_size):
        batch = w.items[i : i + batch_size]
        gens += generate(timed, [c for _, c in batch], s.decoder, s.sampler, generator)
    seconds = time.perf_counter() - start
    records = [
        make_record(ex, canvas, gen, w.task, w.model, 0.0, False)
        for (ex, canvas), gen in zip(w.items, gens)
    ]
    return Measurement(
        label=label,
        batch_size=batch_size,
        examples=len(records),
        seconds=seconds,
        forward_seconds=timed.forward_seconds,
        forward_calls=timed.calls,
        forward_rows=timed.rows,
        gen_tokens=sum(r["gen_tokens"] for r in records),
        nfe=sum(r["nfe"] for r in records),
        correct=sum(r["correct"] for r in records),
        exits=sum(r["exit_step"] is not None for r in records),
    )


def warm_up(w: Workload) -> None:
    """One small decode at each batch size, so first-call costs are not timed."""
    for size in BATCH_SIZES:
        items = w.items[: min(size, len(w.items), 8)]
        s = settings(w.base, ["decoder=med", "lam=1.0"])
        generate(w.model, [c for _, c in items], s.decoder, s.sampler)


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(model: MaskedLM) -> dict[str, str]:
    """Where and with what the numbers were measured."""
    device = torch.device(model.device)
    info = {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "git": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": f"{cpu_name()}, {os.cpu_count()} logical cores",
        "torch threads": str(torch.get_num_threads()),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    if hasattr(os, "getloadavg"):
        info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def throughput_table(rows: list[Measurement]) -> list[str]:
    """Markdown rows: examples/s, tokens/s and their ratios to batch size 1."""
    ref = rows[0]
    out = [
        "| batch | examples/s | x batch 1 | tokens/s | x batch 1 | forward passes | "
        "forward ms / row | forward s | sampler s | sampler / forward | sampler / step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        out.append(
            f"| {m.batch_size} | {m.examples_per_s:.2f} | "
            f"{m.examples_per_s / ref.examples_per_s:.2f} | {m.tokens_per_s:.1f} | "
            f"{m.tokens_per_s / ref.tokens_per_s:.2f} | {m.forward_calls} | "
            f"{m.forward_ms_per_row:.2f} | {m.forward_seconds:.2f} | {m.sampler_seconds:.2f} | "
            f"{m.overhead_of_forward:.1%} | {m.overhead_of_step:.1%} |"
        )
    return out


def decoder_table(rows: list[Measurement]) -> list[str]:
    """Markdown rows: NFE, tokens per NFE, accuracy and speed per decoder."""
    out = [
        "| decoder | mean NFE | tokens / NFE | accuracy | examples/s | sampler / step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        out.append(
            f"| {m.label} | {m.nfe / m.examples:.1f} | {m.gen_tokens / m.nfe:.2f} | "
            f"{m.correct / m.examples:.3f} | {m.examples_per_s:.1f} | "
            f"{m.overhead_of_step:.1%} |"
        )
    return out


def verdict(throughput: list[Measurement]) -> list[str]:
    """Whether the two goals are met, as bullet lines."""
    ref, big = throughput[0], throughput[-1]
    speedup = big.examples_per_s / ref.examples_per_s
    lines = [
        f"- batch {big.batch_size} vs batch 1: {speedup:.2f}x examples/s "
        f"(goal >= {GOAL_SPEEDUP:.0f}x: {'met' if speedup >= GOAL_SPEEDUP else 'missed'}); "
        f"the forward pass alone allows {ref.forward_ms_per_row / big.forward_ms_per_row:.2f}x "
        f"(its time per row: {ref.forward_ms_per_row:.2f} ms at batch 1, "
        f"{big.forward_ms_per_row:.2f} ms at batch {big.batch_size})"
    ]
    for m in throughput:
        ok = "met" if m.overhead_of_step <= GOAL_OVERHEAD else "missed"
        lines.append(
            f"- sampler overhead at batch {m.batch_size}: {m.overhead_of_step:.1%} of step time, "
            f"{m.overhead_of_forward:.1%} of the forward pass (goal <= {GOAL_OVERHEAD:.0%}: {ok})"
        )
    return lines


def render(
    meta: dict[str, str],
    workload: str,
    throughput: list[Measurement],
    decoders: list[Measurement],
    notes: list[str],
) -> str:
    """The whole results/bench.md text."""
    lines = ["# nclb benchmark", "", "Generated by `make bench` (scripts/bench.py).", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", f"Workload: {workload}.", ""]
    lines += ["## Throughput by batch size (k=1, entropy order, greedy)", ""]
    lines += throughput_table(throughput)
    lines += ["", "## Goals", ""] + verdict(throughput)
    lines += ["", f"## NFE per decoder (batch {decoders[0].batch_size}, greedy)", ""]
    lines += decoder_table(decoders)
    lines += [
        "",
        "## How it is measured",
        "",
        "- One process, one model, the same examples for every row; one warm-up decode first.",
        "- examples/s and tokens/s: finished examples and committed (generated) tokens per",
        "  wall-clock second of `nclb.sampler.generate`; scoring and logging are not timed.",
        "- forward s: time inside the model's `logits` call, read by a timing wrapper around",
        "  the model (GPU synchronised before each clock read); sampler s: the rest of the time",
        "  inside `generate` (statistics, decoder policy, bookkeeping, trajectory records).",
        "- sampler / step = sampler s / (forward s + sampler s).",
        "- forward ms / row = forward s / rows over all passes: what one example-step costs the",
        "  model. Batching can speed examples/s up by at most the ratio of this figure at batch 1",
        "  to its value at batch 64 (plus the sampler's share), whatever the sampler does.",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
