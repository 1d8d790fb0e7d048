"""Per-example random streams: uniform numbers that depend only on a stream id, a step and a
position, never on which other examples share the batch.

Each example gets a 64-bit stream id (`stream_id(seed, example_id)`: a hash of the run's seed and
the example's id). At its t-th forward pass the sampler asks for one uniform number per region
position and purpose (the token draw, a random commit order); the number is a hash of (stream id,
purpose, t, position), computed on the device that holds the logits. So an example's samples are
the same whatever the batch size, continuous batching, resume or sharding, and the same on every
device. The hash is murmur3's 32-bit finaliser applied to those words in turn, written with int64
arithmetic that never overflows.
"""

from __future__ import annotations

import functools
import hashlib

import torch

TOKEN, ORDER = 0, 1  # purposes: the token drawn at a position, a random commit order
PURPOSES = (TOKEN, ORDER)
_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def stream_id(seed: int, key: object) -> int:
    """The 64-bit stream id of example `key` (its id) in a run seeded with `seed`; stable across
    processes, platforms and Python versions."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def default_streams(count: int, generator: torch.Generator | None = None) -> list[int]:
    """Stream ids for `count` canvases given none: stream i is derived from one number drawn
    from `generator` (or torch's global generator) and i."""
    base = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return [stream_id(base, i) for i in range(count)]


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 x in [0, 2**32), in two halves so nothing overflows int64."""
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _M32


def mix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's finaliser: a bijection of [0, 2**32) in which every input bit flips about
    half of the output bits."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def row_keys(streams: list[int], device: torch.device | str) -> torch.Tensor:
    """Long [R, len(PURPOSES)]: each stream's 32-bit key per purpose (computed once per row)."""
    words = torch.tensor([[s & _M32, s >> 32] for s in streams], dtype=torch.long)
    keys = [mix32(mix32(words[:, 0] ^ (_GOLDEN * (p + 1) & _M32)) ^ words[:, 1]) for p in PURPOSES]
    return torch.stack(keys, dim=1).to(device)


@functools.lru_cache(maxsize=64)
def _position_words(width: int, device: torch.device) -> torch.Tensor:
    """Long [1, width]: a mixed word per position (cached; never written to)."""
    return mix32(torch.arange(width, device=device) * _GOLDEN & _M32).unsqueeze(0)


def uniforms(keys: torch.Tensor, steps: torch.Tensor, width: int) -> torch.Tensor:
    """Float32 [R, width] in (0, 1): the numbers of rows with 32-bit `keys` [R] (one purpose's
    column of `row_keys`) at their forward pass `steps` [R], one per position."""
    h = mix32(keys ^ (steps & _M32)).unsqueeze(1)
    h = mix32(h ^ _position_words(width, keys.device))
    return ((h >> 8).float() + 0.5) * 2.0**-24
