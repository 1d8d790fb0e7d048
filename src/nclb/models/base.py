"""The one model interface every sampler and task talks to."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from nclb.models.kvcache import CachedForward


@runtime_checkable
class TextCodec(Protocol):
    """The part of a tokenizer that nclb needs."""

    def encode(self, text: str) -> list[int]:
        """Token ids for `text`, without special tokens."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text for `ids`, special tokens dropped."""
        ...


class MaskedLM(Protocol):
    """A masked diffusion LM: ids [B, N] in, logits at the asked columns out, position i
    predicts token i.

    Adapters hide the family quirks (Dream's shifted logits, LLaDA ignoring the attention mask).
    `attention_mask` is a bool [B, N] tensor, True on real tokens, False on left padding.
    `columns` is the query set: long [B, Q] column indices into `ids` (per row, any order, not
    necessarily contiguous); the model computes logits only there (None: every column).
    `cached_forward` is the model's forward over a key/value cache (nclb.models.kvcache), or
    None for a model that cannot keep one (then only `cache=none` runs on it).
    """

    mask_id: int
    pad_id: int
    eos_ids: tuple[int, ...]
    codec: TextCodec
    device: torch.device
    vocab_size: int
    supports_padding: bool  # whether left-padded rows get the logits of unpadded ones
    cached_forward: CachedForward | None

    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Float logits [B, Q, V] at `columns` [B, Q] of `ids` (every column when None)."""
        ...

    def prompt_ids(self, text: str) -> list[int]:
        """Token ids of a user prompt as the model expects it (chat template for instruct models)."""
        ...


def describe_model(model: MaskedLM) -> dict[str, Any]:
    """What a run's model resolved to, for summary.json: the adapter's own `describe()` (the
    Hugging Face adapter: family, device, dtype, special ids, chat template), else its special
    token ids."""
    describe = getattr(model, "describe", None)
    if callable(describe):
        return describe()
    return {"mask_id": model.mask_id, "pad_id": model.pad_id, "eos_ids": list(model.eos_ids)}
