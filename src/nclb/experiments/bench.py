"""`make bench`: throughput by batch size; per decoder the NFE, occupancy, wall time per NFE
and the sampler's own share of step time, with and without continuous batching; and with the
key/value cache (none, prefix, dual) the forward time per row, the positions computed per row
and the occupancy under continuous batching.

Everything is measured in one process on one model, through the runner's `decode` (the loop
that `nclb run` uses). The forward pass is timed by a wrapper around the model's forward calls,
and the passes are counted by the loop's step hook (nclb.experiments.timing); the sampler's own
time is the rest of the time spent decoding.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass

import torch

from nclb.config.compose import compose
from nclb.config.settings import RunSettings, resolve
from nclb.errors import UserError
from nclb.experiments.timing import timed_decode
from nclb.models.base import MaskedLM
from nclb.models.build import build_model
from nclb.runs.revision import git_revision
from nclb.runs.runner import make_record
from nclb.sampler import generate
from nclb.sampler.cache import MODES
from nclb.tasks.base import Task
from nclb.tasks.build import build_task, model_context
from nclb.types import Canvas, Example

BATCH_SIZES = (1, 8, 64)
REFERENCE = "k=1"
DECODERS = {
    REFERENCE: ["decoder=ktoken", "k=1"],
    "k=2": ["decoder=ktoken", "k=2"],
    "k=4": ["decoder=ktoken", "k=4"],
    "k=1 + exit gamma=0.1": ["decoder=ktoken", "k=1", "gamma=0.1"],
    "MED lam=0.2": ["decoder=med", "lam=0.2"],
    "AR-MED lam=0.2": ["decoder=ar_med", "lam=0.2"],
    "threshold tau=0.9": ["decoder=threshold", "decoder.tau=0.9"],
    "llada (steps=gen_length)": ["decoder=llada"],
}
GOAL_OVERHEAD = 0.10  # sampler share of step time
GOAL_OCCUPANCY = 0.9  # with continuous batching, for the adaptive decoders below
OCCUPANCY_DECODERS = ("MED lam=0.2", "k=1 + exit gamma=0.1")
GOAL_WALL_PER_NFE = 0.8  # examples/s speed-up over NFE speed-up, against k=1
CACHE_MODES = MODES  # none first: the baseline of the cache rows
# The decoders measured with each cache mode (batch 64, continuous batching).
CACHE_DECODERS = {
    REFERENCE: DECODERS[REFERENCE],
    "MED lam=0.2": DECODERS["MED lam=0.2"],
    "MED lam=0.2 + exit gamma=0.1": ["decoder=med", "lam=0.2", "gamma=0.1"],
}
CACHE_OCCUPANCY_DECODERS = ("MED lam=0.2", "MED lam=0.2 + exit gamma=0.1")


@dataclass
class Measurement:
    """One pass over the examples with one decoder at one batch size."""

    label: str
    batch_size: int
    continuous: bool
    examples: int
    seconds: float
    forward_seconds: float
    forward_calls: int  # model forward calls (a cached pass may make two)
    forward_rows: int  # rows summed over the passes (example-steps)
    passes: int  # steps of the loop, each one forward pass of every row in flight
    full_passes: int  # passes with `batch_size` rows
    gen_tokens: int
    nfe: int
    max_nfe: int
    correct: int
    exits: int
    regions: list[list[int]]  # every generated region, in example order
    cache: str = "none"
    computed: int = 0  # positions the passes computed, prompt included, summed over the rows
    refreshes: int = 0  # row-passes that were full passes rebuilding the row's cache
    refresh_seconds: float = 0.0  # forward time of those full passes

    @property
    def outputs(self) -> str:
        """A digest of every generated region, to compare settings."""
        return hashlib.sha256(json.dumps(self.regions).encode()).hexdigest()[:12]

    @property
    def mode(self) -> str:
        """How the rows were batched."""
        return "continuous" if self.continuous else "static"

    @property
    def examples_per_s(self) -> float:
        """Finished examples per wall-clock second inside the sampler."""
        return self.examples / self.seconds

    @property
    def tokens_per_s(self) -> float:
        """Generated (committed) tokens per second."""
        return self.gen_tokens / self.seconds

    @property
    def mean_nfe(self) -> float:
        """Forward passes per example."""
        return self.nfe / self.examples

    @property
    def occupancy(self) -> float:
        """Mean rows per forward pass over the batch size."""
        return self.forward_rows / (self.passes * self.batch_size)

    @property
    def sampler_seconds(self) -> float:
        """Decoding time that is not the forward pass."""
        return max(self.seconds - self.forward_seconds, 0.0)

    @property
    def forward_ms_per_row(self) -> float:
        """Forward time per row of a pass: the model's cost of one example-step."""
        return 1000 * self.forward_seconds / self.forward_rows

    @property
    def computed_per_row(self) -> float:
        """Positions (prompt included) one row's pass computed, on average."""
        return self.computed / self.forward_rows

    @property
    def refresh_share(self) -> float:
        """The share of row-passes that were full passes rebuilding the cache (0 without)."""
        return self.refreshes / self.forward_rows if self.cache != "none" else 0.0

    @property
    def ms_per_refresh_row(self) -> float | None:
        """Forward ms per row of a full (refresh) pass; None without a cache or a refresh."""
        if self.cache == "none" or not self.refreshes:
            return None
        return 1000 * self.refresh_seconds / self.refreshes

    @property
    def ms_per_cached_row(self) -> float | None:
        """Forward ms per row of a pass that read its cache; None without a cache or one."""
        rows = self.forward_rows - self.refreshes
        if self.cache == "none" or not rows:
            return None
        return 1000 * (self.forward_seconds - self.refresh_seconds) / rows

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
    m = build_model(s.model, model_context(t, examples, s.gen_length))
    items = [(ex, t.canvas(ex, m, s.gen_length)) for ex in examples]
    return Workload(model=m, task=t, items=items, base=base)


def measure(
    w: Workload, label: str, overrides: list[str], batch_size: int, continuous: bool = True
) -> Measurement:
    """Decode every example at `batch_size` (seed 0), with or without continuous batching,
    and time it (`overrides` may set `cache=`)."""
    s = settings(w.base, overrides)
    canvases = [c for _, c in w.items]
    generator = torch.Generator().manual_seed(s.seed)
    gens, t = timed_decode(
        w.model,
        canvases,
        s.decoder,
        s.sampler,
        batch_size,
        continuous=continuous,
        generator=generator,
    )
    records = [
        make_record(ex, canvas, gen, w.task, w.model, 0.0, False)
        for (ex, canvas), gen in zip(w.items, gens)
    ]
    return Measurement(
        label=label,
        batch_size=batch_size,
        continuous=continuous,
        examples=len(records),
        **t.measurement_fields(batch_size),
        gen_tokens=sum(r["gen_tokens"] for r in records),
        nfe=sum(r["nfe"] for r in records),
        max_nfe=max(r["nfe"] for r in records),
        correct=sum(r["correct"] for r in records),
        exits=sum(r["exit_step"] is not None for r in records),
        regions=[g.region for g in gens],
        cache=s.sampler.cache.mode,
        computed=sum(r["computed"] for r in records),
        refreshes=sum(r["refreshes"] for r in records),
    )


def warm_up(w: Workload, cache: tuple[str, ...] = ()) -> None:
    """One small decode at each batch size, and one with each cache mode of `cache`, so
    first-call costs are not timed."""
    runs = [(size, "none") for size in BATCH_SIZES]
    runs += [(BATCH_SIZES[-1], mode) for mode in cache if mode != "none"]
    for size, mode in runs:
        items = w.items[: min(size, len(w.items), 8)]
        s = settings(w.base, ["decoder=med", "lam=1.0", f"cache={mode}"])
        generate(w.model, [c for _, c in items], s.decoder, s.sampler)


def cache_modes(text: str) -> tuple[str, ...]:
    """The cache modes of a comma-separated list ('' for none), checked."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in CACHE_MODES]
    if unknown:
        raise UserError(
            f"--cache {text!r}: {', '.join(unknown)} is not a cache mode; give a comma-separated "
            f"list of {', '.join(CACHE_MODES)} (or '' for no cache rows)"
        )
    return modes


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
        "| batch | examples/s | x batch 1 | tokens/s | x batch 1 | forward passes | occupancy | "
        "forward ms / row | forward s | sampler s | sampler / forward | sampler / step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        out.append(
            f"| {m.batch_size} | {m.examples_per_s:.2f} | "
            f"{m.examples_per_s / ref.examples_per_s:.2f} | {m.tokens_per_s:.1f} | "
            f"{m.tokens_per_s / ref.tokens_per_s:.2f} | {m.passes} | {m.occupancy:.3f} | "
            f"{m.forward_ms_per_row:.2f} | {m.forward_seconds:.2f} | {m.sampler_seconds:.2f} | "
            f"{m.overhead_of_forward:.1%} | {m.overhead_of_step:.1%} |"
        )
    return out


def reference(rows: list[Measurement], m: Measurement) -> Measurement:
    """The k=1 measurement with the same batching as `m`."""
    return next(r for r in rows if r.label == REFERENCE and r.continuous == m.continuous)


def wall_per_nfe(rows: list[Measurement], m: Measurement) -> tuple[float, float, float]:
    """(NFE speed-up, examples/s speed-up, their ratio) of `m` against k=1, same batching."""
    ref = reference(rows, m)
    nfe_speedup = ref.mean_nfe / m.mean_nfe
    wall_speedup = m.examples_per_s / ref.examples_per_s
    return nfe_speedup, wall_speedup, wall_speedup / nfe_speedup


def decoder_table(rows: list[Measurement]) -> list[str]:
    """Markdown rows per decoder and batching: NFE, accuracy, occupancy, speed-ups against
    k=1, the wall / NFE ratio and the sampler's share of step time."""
    out = [
        "| decoder | batching | mean NFE | accuracy | occupancy | examples/s | "
        "NFE speed-up vs k=1 | examples/s speed-up vs k=1 | wall / NFE ratio | sampler / step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in sorted(rows, key=lambda r: (list(DECODERS).index(r.label), not r.continuous)):
        nfe_x, wall_x, ratio = wall_per_nfe(rows, m)
        out.append(
            f"| {m.label} | {m.mode} | {m.mean_nfe:.1f} | {m.correct / m.examples:.3f} | "
            f"{m.occupancy:.3f} | {m.examples_per_s:.1f} | {nfe_x:.2f}x | {wall_x:.2f}x | "
            f"{ratio:.2f} | {m.overhead_of_step:.1%} |"
        )
    return out


def without_cache(rows: list[Measurement], m: Measurement) -> Measurement | None:
    """The measurement of `m`'s decoder without cache, same batching (None if not measured)."""
    return next(
        (
            r
            for r in rows
            if r.label == m.label and r.cache == "none" and r.continuous == m.continuous
        ),
        None,
    )


def differ_share(m: Measurement, base: Measurement) -> float:
    """The share of examples whose generated region differs between `m` and `base`."""
    return sum(a != b for a, b in zip(m.regions, base.regions, strict=True)) / m.examples


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cache_table(rows: list[Measurement]) -> list[str]:
    """Markdown rows per decoder and cache mode: NFE, accuracy, positions computed per
    row-pass, the share of full (refresh) row-passes, forward ms per row (all passes, full
    passes, cached passes), occupancy, examples/s and its ratio to the same decoder without
    cache, and the share of outputs that differ from it."""
    out = [
        "| decoder | cache | mean NFE | accuracy | positions / row-pass | refresh share | "
        "forward ms / row | ms / full row | ms / cached row | occupancy | full passes | "
        "examples/s | x no cache | outputs differ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = list(CACHE_DECODERS)

    def key(m: Measurement) -> tuple[int, int]:
        return (order.index(m.label), CACHE_MODES.index(m.cache))

    for m in sorted(rows, key=key):
        base = without_cache(rows, m)
        speedup = "-" if base is None else f"{m.examples_per_s / base.examples_per_s:.2f}x"
        differ = "-" if base is None or base is m else f"{differ_share(m, base):.1%}"
        out.append(
            f"| {m.label} | {m.cache} | {m.mean_nfe:.1f} | {m.correct / m.examples:.3f} | "
            f"{m.computed_per_row:.1f} | {m.refresh_share:.1%} | {m.forward_ms_per_row:.2f} | "
            f"{_ms(m.ms_per_refresh_row)} | {_ms(m.ms_per_cached_row)} | {m.occupancy:.3f} | "
            f"{m.full_passes} of {m.passes} | {m.examples_per_s:.1f} | {speedup} | {differ} |"
        )
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def cache_verdict(rows: list[Measurement]) -> list[str]:
    """The cache rows' goal (MED's occupancy with continuous batching stays >= the goal with
    the cache on) and, per cache mode, the examples/s and forward ms per row against no cache,
    as bullet lines."""
    lines = []
    for label in CACHE_OCCUPANCY_DECODERS:
        mine = sorted(
            (m for m in rows if m.label == label and m.continuous),
            key=lambda m: CACHE_MODES.index(m.cache),
        )
        cached = [m for m in mine if m.cache != "none"]
        if not cached:
            continue
        each = ", ".join(f"{m.occupancy:.3f} with cache={m.cache}" for m in mine)
        ok = all(m.occupancy >= GOAL_OCCUPANCY for m in cached)
        lines.append(
            f"- occupancy of {label} at batch {mine[0].batch_size}, continuous batching: {each} "
            f"(goal >= {GOAL_OCCUPANCY} with the cache on: {_met(ok)})"
        )
    for mode in CACHE_MODES[1:]:
        pairs = [(m, without_cache(rows, m)) for m in rows if m.cache == mode]
        pairs = [(m, base) for m, base in pairs if base is not None]
        if not pairs:
            continue
        speed = ", ".join(
            f"{m.label} {m.examples_per_s / base.examples_per_s:.2f}x" for m, base in pairs
        )
        cost = ", ".join(
            f"{m.label} {m.forward_ms_per_row:.2f} against {base.forward_ms_per_row:.2f}"
            for m, base in pairs
        )
        lines.append(
            f"- cache={mode}: examples/s against the same decoder without cache: {speed}; "
            f"forward ms per row: {cost}"
        )
    return lines


def verdict(throughput: list[Measurement], decoders: list[Measurement]) -> list[str]:
    """Whether the goals are met, as bullet lines."""
    lines = []
    by = {(m.label, m.continuous): m for m in decoders}
    for label in OCCUPANCY_DECODERS:
        if (label, True) not in by or (label, False) not in by:
            continue
        on, off = by[(label, True)], by[(label, False)]
        lines.append(
            f"- occupancy of {label} at batch {on.batch_size}: {on.occupancy:.3f} with continuous "
            f"batching, {off.occupancy:.3f} without (goal >= {GOAL_OCCUPANCY}: "
            f"{_met(on.occupancy >= GOAL_OCCUPANCY)}); with continuous batching "
            f"{on.full_passes} of {on.passes} passes were full, the rest drained the last "
            f"rows after the queue ran dry (NFE per example: mean {on.mean_nfe:.1f}, "
            f"max {on.max_nfe})"
        )
    continuous = [m for m in decoders if m.continuous]
    ratios = {m.label: wall_per_nfe(decoders, m)[2] for m in continuous}
    worst = min(ratios, key=ratios.get)
    lines.append(
        f"- wall / NFE ratio against k=1 at batch {continuous[0].batch_size}, continuous "
        f"batching: lowest {ratios[worst]:.2f} ({worst}) (goal >= {GOAL_WALL_PER_NFE} for every "
        f"decoder: {_met(ratios[worst] >= GOAL_WALL_PER_NFE)})"
    )
    for m in throughput:
        if m.batch_size == 1:
            continue
        lines.append(
            f"- sampler share at batch {m.batch_size} (k=1): {m.overhead_of_step:.1%} of step time "
            f"(goal <= {GOAL_OVERHEAD:.0%}: {_met(m.overhead_of_step <= GOAL_OVERHEAD)})"
        )
    worst_share = max(continuous, key=lambda m: m.overhead_of_step)
    lines.append(
        f"- sampler share at batch {worst_share.batch_size}, highest over the decoders: "
        f"{worst_share.overhead_of_step:.1%} ({worst_share.label}) (goal <= "
        f"{GOAL_OVERHEAD:.0%}: {_met(worst_share.overhead_of_step <= GOAL_OVERHEAD)})"
    )
    pairs = [(m, by[(m.label, False)]) for m in continuous if (m.label, False) in by]
    same = sum(on.outputs == off.outputs for on, off in pairs)
    lines.append(
        f"- greedy outputs with and without continuous batching: identical for {same} of "
        f"{len(pairs)} decoders"
    )
    return lines


def render(
    meta: dict[str, str],
    workload: str,
    throughput: list[Measurement],
    decoders: list[Measurement],
    notes: list[str],
    cache: list[Measurement] | None = None,
) -> str:
    """The whole results/bench.md text (`cache`: the cache rows, if measured)."""
    lines = ["# nclb benchmark", "", "Generated by `make bench` (scripts/bench.py).", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", f"Workload: {workload}.", ""]
    lines += ["## Goals", ""] + verdict(throughput, decoders) + cache_verdict(cache or [])
    lines += [
        "",
        f"## Per decoder, batch {decoders[0].batch_size}, with and without continuous batching "
        "(greedy)",
        "",
    ]
    lines += decoder_table(decoders)
    if cache:
        lines += [
            "",
            f"## Key/value cache, batch {cache[0].batch_size}, continuous batching (greedy)",
            "",
        ]
        lines += cache_table(cache)
    lines += ["", "## Throughput by batch size (k=1, entropy order, greedy, continuous)", ""]
    lines += throughput_table(throughput)
    lines += [
        "",
        "## How it is measured",
        "",
        "- One process, one model, the same examples for every row; one warm-up decode first.",
        "- continuous: the loop keeps `batch` rows in flight and refills a row from the queue as",
        "  soon as its example finishes; static: consecutive batches of `batch` examples, each",
        "  decoded until its slowest row finishes (rows that finish leave the batch).",
        "- occupancy: rows per forward pass over the batch size, averaged over the passes. Once",
        "  the queue runs dry the last rows drain, for up to the largest NFE of an example, so",
        "  the figure depends on how NFE is spread over the examples, not on the device.",
        "- examples/s and tokens/s: finished examples and committed (generated) tokens per",
        "  wall-clock second of decoding; scoring and logging are not timed.",
        "- NFE speed-up: mean NFE of k=1 over the decoder's; examples/s speed-up: the decoder's",
        "  examples/s over k=1's (same batching); wall / NFE ratio: the second over the first",
        "  (1.0: fewer forward passes turn fully into less wall time).",
        "- forward s: time inside the model's forward calls (`logits`, and with a cache",
        "  `cached_forward`), read by a timing wrapper around the model (GPU synchronised before",
        "  each clock read); sampler s: the rest of the decoding time (statistics, decoder",
        "  policy, commits, exit test, trajectory, refills; with a cache also the query plan).",
        "- sampler / step = sampler s / (forward s + sampler s).",
        "- passes: steps of the loop, counted by its step hook. A pass with the cache can be two",
        "  model calls (the rows that refresh in a full pass, the others against their cache);",
        "  it is one pass of all its rows, so occupancy is rows per pass over the batch size.",
        "- forward ms / row = forward s / rows over all passes: what one example-step costs the",
        "  model (with a cache both calls of a pass count); ms / full row and ms / cached row",
        "  split it between the row-passes that refreshed their cache and those that read it.",
        "- positions / row-pass: positions (prompt included) a row's pass computed, on average",
        "  (the records' `computed` over their NFE); refresh share: the row-passes that were full",
        "  passes; outputs differ: the share of examples whose greedy output is not the one",
        "  without cache (a cached pass reads keys and values from before the latest commits).",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
