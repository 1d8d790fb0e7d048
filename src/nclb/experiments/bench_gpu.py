"""The key/value cache bench on random-weight LLaDA shapes: cache none / prefix / dual through
nclb's own LLaDA forward (nclb.models.forwards.llada), results/bench-gpu.md.

The model is the LLaDA stand-in (released module and parameter names) built in memory with
random weights at the asked shapes (LLaDA-8B's by default: prompt 200, generation length 256,
block 32), on the device; prompts are random ids, every region position is masked. Each mode
decodes the same canvases with k=1 greedy through the runner's `decode`, timed as `make bench`
times it (nclb.experiments.timing). Every mode's passes run nclb's forward: with `cache=none`
its full pass (the one a refresh makes), so the rows differ by the cache alone. k=1 because
with random weights an entropy-driven decoder's pass count means nothing; the outputs are
random tokens, so neither accuracy nor outputs are compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from nclb.errors import UserError
from nclb.experiments.bench import Measurement, machine
from nclb.experiments.timing import DecodeTiming, timed_decode
from nclb.models.hf import HFMaskedLM
from nclb.models.standin import REAL_SIZES, in_memory_standin
from nclb.sampler import Generation, SamplerConfig, build_decoder
from nclb.sampler.cache import MODES, CacheConfig
from nclb.types import Canvas

# More parameters than this is too slow for a CPU (LLaDA-8B: hours per mode).
CPU_PARAMETER_LIMIT = 1e9


@dataclass(frozen=True)
class Shapes:
    """The model's sizes (as nclb.models.standin.standin_config names them) and the canvas."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    vocab: int
    prompt: int
    gen_length: int
    block: int

    def sizes(self) -> dict[str, int]:
        """The model sizes, for standin_config."""
        names = ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab")
        return {name: getattr(self, name) for name in names}

    def parameters(self) -> int:
        """The model's parameter count (embedding, blocks, head; norms left out)."""
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        mlp = 3 * self.hidden * self.mlp
        return self.layers * (attention + mlp) + 2 * self.vocab * self.hidden

    def check(self) -> None:
        """A UserError naming the flag for shapes the forward cannot take."""
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise UserError(f"--{f.name.replace('_', '-')} must be at least 1")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise UserError(
                f"--hidden {self.hidden} must be a multiple of --heads {self.heads}, and --heads "
                f"a multiple of --kv-heads {self.kv_heads}"
            )
        if (self.hidden // self.heads) % 2:
            raise UserError("--hidden / --heads (the head size) must be even for the rotary code")


LLADA_8B = Shapes(**REAL_SIZES["llada"], prompt=200, gen_length=256, block=32)
# Small enough for a CPU test in seconds; the vocabulary holds the stand-in tokenizer's ids.
SMALL = Shapes(
    hidden=32,
    layers=2,
    heads=4,
    kv_heads=2,
    mlp=64,
    vocab=256,
    prompt=12,
    gen_length=32,
    block=8,
)


class OwnForwardModel:
    """A MaskedLM whose `logits` is nclb's own forward's full pass (the adapter's
    `cached_forward` with no cache); every other attribute is the adapter's."""

    def __init__(self, lm: HFMaskedLM) -> None:
        if lm.cached_forward is None:
            raise UserError(f"the random-weight LLaDA has no own forward: {lm.no_cache_reason}")
        self.lm = lm

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lm, name)

    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Float logits [B, Q, V] at `columns` (every column when None) from a full pass."""
        if attention_mask is None:
            attention_mask = torch.ones_like(ids, dtype=torch.bool)
        if columns is None:
            columns = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        return self.lm.cached_forward(ids, attention_mask, columns, None)[0]


def random_llada(
    shapes: Shapes, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> OwnForwardModel:
    """nclb's forward over a random-weight LLaDA stand-in of `shapes` on `device`."""
    torch.manual_seed(seed)
    return OwnForwardModel(in_memory_standin("llada", device, dtype, **shapes.sizes()))


def random_canvases(model: OwnForwardModel, shapes: Shapes, n: int, seed: int = 0) -> list[Canvas]:
    """`n` canvases: a prompt of random ids (never the mask id), every region position masked."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.vocab_size - 1, (n, shapes.prompt), generator=gen)
    ids = ids + (ids >= model.mask_id).long()  # skip the mask id
    region = [model.mask_id] * shapes.gen_length
    return [Canvas(prompt=row.tolist(), region=list(region)) for row in ids]


def sampler(shapes: Shapes, mode: str) -> SamplerConfig:
    """k=1's loop settings: greedy, the block of `shapes`, cache `mode`."""
    return SamplerConfig(block=shapes.block, cache=CacheConfig(mode=mode))


def measure_mode(
    model: OwnForwardModel, canvases: list[Canvas], shapes: Shapes, mode: str, batch_size: int
) -> tuple[Measurement, float]:
    """k=1 over the canvases with cache `mode` at `batch_size`, continuous batching; returns
    the measurement and the peak GPU memory in GB (0 on a CPU)."""
    cuda = torch.device(model.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(model.device)
    gens, t = timed_decode(
        model, canvases, build_decoder("ktoken", k=1), sampler(shapes, mode), batch_size
    )
    peak = torch.cuda.max_memory_allocated(model.device) / 2**30 if cuda else 0.0
    return from_generations(mode, batch_size, gens, t), peak


def from_generations(
    mode: str, batch_size: int, gens: list[Generation], t: DecodeTiming
) -> Measurement:
    """The bench's Measurement of one mode's decode (no task: nothing is scored)."""
    return Measurement(
        label="k=1",
        batch_size=batch_size,
        continuous=True,
        examples=len(gens),
        **t.measurement_fields(batch_size),
        gen_tokens=sum(len(s.positions) for g in gens for s in g.steps),
        nfe=sum(g.nfe for g in gens),
        max_nfe=max(g.nfe for g in gens),
        correct=0,
        exits=sum(g.exit_step is not None for g in gens),
        regions=[g.region for g in gens],
        cache=mode,
        computed=sum(g.computed for g in gens),
        refreshes=sum(g.refreshes for g in gens),
    )


def warm_up(
    model: OwnForwardModel, shapes: Shapes, modes: tuple[str, ...], batch_size: int
) -> None:
    """One block's decode per mode, so first-call costs (kernels, allocator) are not timed."""
    short = replace(shapes, gen_length=shapes.block)
    canvases = random_canvases(model, short, batch_size, seed=1)
    for mode in modes:
        timed_decode(
            model, canvases, build_decoder("ktoken", k=1), sampler(short, mode), batch_size
        )


@dataclass
class GpuBench:
    """Every mode's measurement and peak memory, and what they were measured on."""

    shapes: Shapes
    dtype: torch.dtype
    rows: list[tuple[Measurement, float]]
    meta: dict[str, str]
    build_seconds: float


def run_bench(
    shapes: Shapes,
    device: torch.device,
    dtype: torch.dtype,
    n: int,
    batch_size: int,
    modes: tuple[str, ...] = MODES,
) -> GpuBench:
    """Build the random-weight model and measure each cache mode (see the module docstring)."""
    shapes.check()
    if n < 1 or batch_size < 1:
        raise UserError("--n and --batch must be at least 1")
    if device.type == "cpu" and shapes.parameters() > CPU_PARAMETER_LIMIT:
        raise UserError(
            f"these shapes have about {count(shapes.parameters())} parameters, too many for "
            "a CPU: run on a CUDA GPU (--device cuda), or pass --small (or smaller --layers / "
            "--hidden / --mlp / --vocab)"
        )
    start = time.perf_counter()
    model = random_llada(shapes, device, dtype)
    build = time.perf_counter() - start
    canvases = random_canvases(model, shapes, n)
    meta = machine(model)
    warm_up(model, shapes, modes, batch_size)
    rows = [measure_mode(model, canvases, shapes, mode, batch_size) for mode in modes]
    return GpuBench(shapes=shapes, dtype=dtype, rows=rows, meta=meta, build_seconds=build)


def count(parameters: int) -> str:
    """A parameter count in billions or millions."""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.2f}B"
    return f"{parameters / 1e6:.2f}M"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(rows: list[tuple[Measurement, float]]) -> list[str]:
    """Markdown rows per cache mode: passes, model calls, forward time per pass and per row
    (all, full passes, cached passes), positions computed per row-pass, refresh share,
    occupancy, examples/s and tokens/s with their ratio to cache=none, peak memory."""
    out = [
        "| cache | passes | model calls | forward ms / pass | forward ms / row | ms / full row | "
        "ms / cached row | positions / row-pass | refresh share | occupancy | examples/s | "
        "tokens/s | x none | peak GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = next((m for m, _ in rows if m.cache == "none"), None)
    for m, peak in rows:
        speedup = "-" if base is None else f"{m.examples_per_s / base.examples_per_s:.2f}x"
        out.append(
            f"| {m.cache} | {m.passes} | {m.forward_calls} | "
            f"{1000 * m.forward_seconds / m.passes:.1f} | {m.forward_ms_per_row:.2f} | "
            f"{_ms(m.ms_per_refresh_row)} | {_ms(m.ms_per_cached_row)} | "
            f"{m.computed_per_row:.1f} | {m.refresh_share:.1%} | {m.occupancy:.3f} | "
            f"{m.examples_per_s:.3f} | {m.tokens_per_s:.1f} | {speedup} | {peak:.1f} |"
        )
    return out


def render(bench: GpuBench, n: int, notes: list[str]) -> str:
    """The whole results/bench-gpu.md text."""
    s = bench.shapes
    batch = bench.rows[0][0].batch_size
    lines = [
        "# nclb key/value cache benchmark: random-weight LLaDA shapes",
        "",
        "Generated by scripts/bench_gpu.py.",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in bench.meta.items()]
    lines += [
        f"- dtype: {str(bench.dtype).removeprefix('torch.')}",
        f"- model built in {bench.build_seconds:.1f} s",
        "",
        f"Workload: the LLaDA stand-in with random weights, hidden {s.hidden}, {s.layers} layers, "
        f"{s.heads} heads ({s.kv_heads} key/value), MLP {s.mlp}, vocabulary {s.vocab} (about "
        f"{count(s.parameters())} parameters); {n} canvases of a {s.prompt}-token random "
        f"prompt and {s.gen_length} masked positions, block {s.block}; k=1 greedy, batch {batch}, "
        "continuous batching; nclb's own LLaDA forward in every mode.",
        "",
    ]
    lines += table(bench.rows)
    lines += [
        "",
        "## How it is measured",
        "",
        "- One process, one model, the same canvases for every mode; one block's decode per",
        "  mode first (warm-up).",
        "- cache=none runs nclb's forward's full pass at every pass (what a refresh runs), so",
        "  the rows differ by the cache alone; `nclb run cache=none` on a real checkpoint runs",
        "  the released remote code instead.",
        "- forward ms: time inside the model's forward calls, the GPU synchronised before each",
        "  clock read; a pass with the cache can be two calls (refreshing rows, cached rows).",
        "- positions / row-pass: positions (prompt included) a row's pass computed; refresh",
        "  share: the row-passes that were full passes rebuilding the row's cache.",
        "- examples/s, tokens/s: per wall-clock second of decoding. The weights are random, so",
        "  the outputs mean nothing and are not compared; k=1 makes one pass per position.",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
