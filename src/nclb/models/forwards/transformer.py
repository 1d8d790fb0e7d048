"""nclb's forward of a bidirectional pre-norm transformer (LLaDA, Dream) over a key/value cache.

One pass either refreshes (every column computed, every column's keys and values returned) or
recomputes a set of columns per row against a cache: their queries attend to their own fresh
keys and values and to the cache's at every other column; the cache is not written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nclb.models.forwards.weights import Block, TransformerWeights
from nclb.models.kvcache import KVCache, gather_columns
from nclb.models.padding import padded_positions, pairwise_mask


def recompute_set(columns: torch.Tensor, reads: torch.Tensor, width: int):
    """The columns a cached pass computes: per row, `columns` and `reads` (the columns the
    head reads), ascending, without repeats, rows shorter than the longest padded by repeating
    their first column. Returns those columns [B, W] and where each of `reads` [B, Q] sits in
    them [B, Q]."""
    rows = columns.shape[0]
    member = torch.zeros(rows, width, dtype=torch.bool, device=columns.device)
    member.scatter_(1, columns, True).scatter_(1, reads, True)
    counts = member.sum(1)
    wide = int(counts.max())
    order = torch.sort((~member).to(torch.uint8), dim=1, stable=True).indices[:, :wide]
    filled = torch.arange(wide, device=columns.device) < counts[:, None]
    computed = torch.where(filled, order, order[:, :1])
    slot = torch.zeros(rows, width, dtype=torch.long, device=columns.device)
    slot.scatter_(1, computed, torch.arange(wide, device=columns.device).expand(rows, wide))
    return computed, slot.gather(1, reads)


def rotary_angles(positions: torch.Tensor, head_dim: int, theta: float):
    """cos and sin [B, 1, N, head_dim] in float32 at positions [B, N] (half-split layout)."""
    steps = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32)
    inv_freq = 1.0 / (theta ** (steps / head_dim))
    freqs = positions[:, None, :, None].float() * inv_freq
    angles = torch.cat([freqs, freqs], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, full_precision: bool):
    """The rotary embedding of x [B, H, N, D]: in float32 when `full_precision`, else in x's
    dtype."""
    y = x.float() if full_precision else x
    cos, sin = cos.to(y.dtype), sin.to(y.dtype)
    half = y.shape[-1] // 2
    turned = torch.cat([-y[..., half:], y[..., :half]], dim=-1)
    return (y * cos + turned * sin).to(x.dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None):
    """Scaled dot-product attention, each key/value head serving its group of query heads."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class CachedTransformer:
    """A CachedForward (nclb.models.kvcache) over a checkpoint's TransformerWeights.

    masks_padding: padded keys are masked and positions count from each row's first real
        token (Dream); else every column attends to every column, padding included, at
        positions 0..N-1 (LLaDA's released code ignores the attention mask).
    shifted: the hidden state at column c-1 gives the logits of column c, column 0 its own
        (Dream's next-token head), so a cached pass also recomputes each asked column's
        predecessor.
    """

    def __init__(self, weights: TransformerWeights, *, masks_padding: bool, shifted: bool) -> None:
        self.weights = weights
        self.masks_padding = masks_padding
        self.shifted = shifted

    def __call__(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        columns: torch.Tensor,
        cache: KVCache | None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Logits [B, Q, V] at `columns` and the cache (fresh when `cache` is None, else the
        one given, unchanged)."""
        real = attention_mask.to(torch.bool)
        rows, width = ids.shape
        if self.masks_padding:
            positions = padded_positions(real)
        else:
            positions = torch.arange(width, device=ids.device).expand(rows, width)
        reads = (columns - 1).clamp(min=0) if self.shifted else columns
        if cache is None:
            hidden, fresh = self.refresh(ids, real, positions)
            return self.logits(hidden, reads), fresh
        computed, slots = recompute_set(columns, reads, width)
        hidden = self.recompute(ids, real, positions, computed, cache)
        return self.logits(hidden, slots), cache

    def refresh(self, ids: torch.Tensor, real: torch.Tensor, positions: torch.Tensor):
        """Hidden states [B, N, D] of every column and their keys and values."""
        padded = self.masks_padding and not bool(real.all())
        mask = pairwise_mask(real) if padded else None
        cos, sin = self.angles(positions)
        x = self.embed(ids)
        keys, values = [], []
        for block in self.weights.blocks:
            q, k, v = self.project(block, x, cos, sin)
            keys.append(k)
            values.append(v)
            x = self.finish(block, x, attend(q, k, v, mask))
        return x, KVCache(keys, values)

    def recompute(
        self,
        ids: torch.Tensor,
        real: torch.Tensor,
        positions: torch.Tensor,
        computed: torch.Tensor,
        cache: KVCache,
    ) -> torch.Tensor:
        """Hidden states [B, W, D] of the `computed` columns, attending to the cache's keys
        and values outside them."""
        shape = self.weights.shape
        cos, sin = self.angles(positions.gather(1, computed))
        mask = self.query_mask(real, computed)
        index = computed[:, None, :, None].expand(-1, shape.kv_heads, -1, shape.head_dim)
        x = self.embed(ids.gather(1, computed))
        for layer, block in enumerate(self.weights.blocks):
            q, k, v = self.project(block, x, cos, sin)
            keys = cache.keys[layer].scatter(2, index, k.to(cache.keys[layer].dtype))
            values = cache.values[layer].scatter(2, index, v.to(cache.values[layer].dtype))
            x = self.finish(block, x, attend(q, keys.to(q.dtype), values.to(q.dtype), mask))
        return x

    def query_mask(self, real: torch.Tensor, computed: torch.Tensor) -> torch.Tensor | None:
        """Bool [B, 1, W, N]: the rows of pairwise_mask(real) at the computed columns (None
        where nothing is masked)."""
        if not self.masks_padding or bool(real.all()):
            return None
        own = torch.arange(real.shape[1], device=real.device) == computed[..., None]
        return (real[:, None, :] | own)[:, None]

    def angles(self, positions: torch.Tensor):
        """Rotary cos and sin at `positions`."""
        shape = self.weights.shape
        return rotary_angles(positions, shape.head_dim, shape.rope_theta)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings, scaled as the checkpoint asks."""
        x = F.embedding(ids, self.weights.embed)
        return x if self.weights.embed_scale == 1.0 else x * self.weights.embed_scale

    def project(self, block: Block, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Queries [B, H, W, Dh], keys and values [B, H_kv, W, Dh]; queries and keys rotated."""
        shape = self.weights.shape
        h = block.attn_norm(x)

        def heads(y: torch.Tensor, count: int) -> torch.Tensor:
            return y.view(*y.shape[:2], count, shape.head_dim).transpose(1, 2)

        q = rotate(heads(block.q(h), shape.heads), cos, sin, shape.rope_full_precision)
        k = rotate(heads(block.k(h), shape.kv_heads), cos, sin, shape.rope_full_precision)
        return q, k, heads(block.v(h), shape.kv_heads)

    def finish(self, block: Block, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The rest of a block after attention: output projection, residual, gated MLP."""
        merged = attended.transpose(1, 2).reshape(*x.shape[:2], -1)
        x = x + block.out(merged)
        h = block.mlp_norm(x)
        return x + block.down(F.silu(block.gate(h)) * block.up(h))

    def logits(self, hidden: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        """The head's logits [B, Q, V] of the hidden states at `at` [B, Q]."""
        out = self.weights.head(self.weights.final_norm(gather_columns(hidden, at)))
        return out if self.weights.logit_scale == 1.0 else out * self.weights.logit_scale
