"""The tiny model's cached forward: its own forward takes `query_positions`,
`past_key_values` and `use_cache` (nclb.tiny.modeling_nclb_tiny), so this only converts."""

from __future__ import annotations

import torch

from nclb.models.kvcache import CachedForward, KVCache


def tiny_forward(model: torch.nn.Module) -> CachedForward:
    """A CachedForward over a loaded NclbTinyForMaskedLM."""

    def forward(
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        columns: torch.Tensor,
        cache: KVCache | None,
    ) -> tuple[torch.Tensor, KVCache]:
        kwargs = {"input_ids": ids, "attention_mask": attention_mask, "query_positions": columns}
        if cache is None:
            out = model(**kwargs, use_cache=True)
            layers = out["past_key_values"]
            return out.logits, KVCache([k for k, _ in layers], [v for _, v in layers])
        past = tuple(zip(cache.keys, cache.values, strict=True))
        return model(**kwargs, past_key_values=past).logits, cache

    return forward
