"""Keys and values kept between forward passes: the per-row state of a cached model.

A `KVCache` holds, for every layer, the keys and values of every column of a batch of rows,
as the model computed them at the row's last full (refresh) pass: `keys[l]` and `values[l]` are
[B, H, N, D] (H: the key/value heads, before any grouped-query repeat; keys after the rotary
embedding). Rows are re-indexed with the loop's rows (`select`, `join`) and re-padded on the left
when the widest prompt in flight changes (`padded_to`).

A model that can serve a cache implements `CachedForward`: one call either computes every column
(a refresh: `cache=None`, the keys and values of every column come back) or recomputes only the
asked columns against the cache (the other columns' keys and values are read from it; the cache
is not written). Either way the logits come back at the asked columns only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass
class KVCache:
    """Per-layer keys and values [B, H, N, D] of a batch of rows (see the module docstring)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def rows(self) -> int:
        """How many rows the cache holds."""
        return self.keys[0].shape[0]

    @property
    def width(self) -> int:
        """How many columns each row has."""
        return self.keys[0].shape[2]

    def select(self, rows: torch.Tensor) -> KVCache:
        """Only the rows numbered `rows` (a long tensor), in that order."""
        return KVCache(
            [k.index_select(0, rows) for k in self.keys],
            [v.index_select(0, rows) for v in self.values],
        )

    def join(self, other: KVCache) -> KVCache:
        """These rows followed by `other`'s (same width)."""
        return KVCache(
            [torch.cat(pair) for pair in zip(self.keys, other.keys, strict=True)],
            [torch.cat(pair) for pair in zip(self.values, other.values, strict=True)],
        )

    def write(self, rows: torch.Tensor, fresh: KVCache) -> None:
        """Replace the rows numbered `rows` with `fresh`'s (same width), in place."""
        for mine, new in zip(self.keys + self.values, fresh.keys + fresh.values, strict=True):
            mine.index_copy_(0, rows, new.to(mine.dtype))

    def padded_to(self, width: int) -> KVCache:
        """The same rows with `width` columns: zero columns added, or leading columns cut, on
        the left (the loop only cuts columns that are padding in every row)."""
        change = width - self.width
        if change == 0:
            return self
        if change < 0:
            return KVCache(
                [k[:, :, -change:] for k in self.keys], [v[:, :, -change:] for v in self.values]
            )

        def pad(t: torch.Tensor) -> torch.Tensor:
            zeros = t.new_zeros(t.shape[0], t.shape[1], change, t.shape[3])
            return torch.cat([zeros, t], dim=2)

        return KVCache([pad(k) for k in self.keys], [pad(v) for v in self.values])

    def blank(self, rows: int) -> KVCache:
        """A zero cache of `rows` rows shaped like this one (rows not refreshed yet)."""

        def zeros(t: torch.Tensor) -> torch.Tensor:
            return t.new_zeros(rows, *t.shape[1:])

        return KVCache([zeros(k) for k in self.keys], [zeros(v) for v in self.values])


class CachedForward(Protocol):
    """A family's forward that can refresh and read a KVCache (position i predicts token i)."""

    def __call__(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        columns: torch.Tensor,
        cache: KVCache | None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Logits [B, Q, V] at `columns` (long [B, Q], column indices into `ids` [B, N]).

        cache=None: a full pass over every column; returns the keys and values of every column
        as a new KVCache. Else only `columns` are recomputed (attending to the cache's keys and
        values at every other column, and to their own fresh ones), and the cache comes back
        unchanged. attention_mask: bool [B, N], True on real tokens.
        """
        ...


def gather_columns(values: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """values [B, N, ...] at `columns` [B, Q] -> [B, Q, ...]."""
    index = columns.reshape(*columns.shape, *([1] * (values.dim() - 2)))
    return values.gather(1, index.expand(*columns.shape, *values.shape[2:]))
