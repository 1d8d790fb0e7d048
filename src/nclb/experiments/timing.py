"""Timing a decode: the model's forward time and the loop's passes, for the benchmarks.

The forward time is read by a wrapper around the model's two forward entry points (`logits`,
and `cached_forward` when the model keeps a key/value cache), synchronising a GPU before each
clock read; the passes are counted by the loop's own step hook (`on_step`), so a cached step
that makes two model calls (the rows that refresh and the rows that read their cache) is one
pass of all its rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from nclb.models.base import MaskedLM
from nclb.models.kvcache import CachedForward, KVCache
from nclb.runs.runner import decode
from nclb.sampler import Decoder, Generation, SamplerConfig
from nclb.types import Canvas


class TimedModel:
    """A MaskedLM wrapper that times every forward call, `logits` and `cached_forward` alike
    (the refresh calls of the latter, `cache=None`, also apart); every other attribute is the
    wrapped model's."""

    def __init__(self, model: MaskedLM) -> None:
        self.model = model
        self.forward_seconds = 0.0
        self.refresh_seconds = 0.0
        self.calls = 0
        inner = model.cached_forward
        self.cached_forward: CachedForward | None = None
        if inner is not None:
            self.cached_forward = self._timed_cached(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _sync(self) -> None:
        if torch.device(self.model.device).type == "cuda":
            torch.cuda.synchronize(self.model.device)

    def _timed(self, call, *args) -> tuple[Any, float]:
        self._sync()
        start = time.perf_counter()
        out = call(*args)
        self._sync()
        seconds = time.perf_counter() - start
        self.forward_seconds += seconds
        self.calls += 1
        return out, seconds

    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The wrapped model's logits, with the time they took added to `forward_seconds`."""
        return self._timed(self.model.logits, ids, attention_mask, columns)[0]

    def _timed_cached(self, inner: CachedForward) -> CachedForward:
        def forward(
            ids: torch.Tensor,
            attention_mask: torch.Tensor,
            columns: torch.Tensor,
            cache: KVCache | None,
        ) -> tuple[torch.Tensor, KVCache | None]:
            out, seconds = self._timed(inner, ids, attention_mask, columns, cache)
            if cache is None:
                self.refresh_seconds += seconds
            return out

        return forward


@dataclass
class PassCounter:
    """The loop's step hook: the rows of each pass, in order."""

    rows: list[int] = field(default_factory=list)

    def __call__(self, rows: int) -> None:
        self.rows.append(rows)


@dataclass
class DecodeTiming:
    """How long a decode took and what its passes held.

    seconds: wall time of the whole decode; forward_seconds: inside the model's forward calls
    (refresh_seconds of it in full passes that rebuilt a cache); calls: model forward calls;
    pass_rows: the rows of each pass (one entry per step of the loop).
    """

    seconds: float
    forward_seconds: float
    refresh_seconds: float
    calls: int
    pass_rows: list[int]

    def measurement_fields(self, batch_size: int) -> dict[str, float | int]:
        """The timing and pass fields of a bench Measurement (full passes: those of
        `batch_size` rows)."""
        return {
            "seconds": self.seconds,
            "forward_seconds": self.forward_seconds,
            "forward_calls": self.calls,
            "forward_rows": sum(self.pass_rows),
            "passes": len(self.pass_rows),
            "full_passes": sum(rows == batch_size for rows in self.pass_rows),
            "refresh_seconds": self.refresh_seconds,
        }


def timed_decode(
    model: MaskedLM,
    canvases: list[Canvas],
    decoder: Decoder,
    sampler: SamplerConfig,
    batch_size: int,
    *,
    continuous: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[list[Generation], DecodeTiming]:
    """Decode the canvases through the runner's `decode` and time it (see DecodeTiming)."""
    timed = TimedModel(model)
    passes = PassCounter()
    start = time.perf_counter()
    gens = decode(
        timed,
        canvases,
        decoder,
        sampler,
        batch_size,
        generator=generator,
        continuous=continuous,
        on_step=passes,
    )
    seconds = time.perf_counter() - start
    timing = DecodeTiming(
        seconds=seconds,
        forward_seconds=timed.forward_seconds,
        refresh_seconds=timed.refresh_seconds,
        calls=timed.calls,
        pass_rows=passes.rows,
    )
    return gens, timing
