"""The one model interface every sampler and task talks to."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


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
    """A masked diffusion LM: ids [B, N] in, logits [B, N, V] out, position i predicts token i.

    Adapters hide the family quirks (Dream's shifted logits, LLaDA ignoring the attention mask).
    `attention_mask` is a bool [B, N] tensor, True on real tokens, False on left padding.
    """

    mask_id: int
    pad_id: int
    eos_ids: tuple[int, ...]
    codec: TextCodec
    device: torch.device
    vocab_size: int
    supports_padding: bool  # whether left-padded rows get the logits of unpadded ones

    def logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Float logits [B, N, V] for every position of `ids`."""
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
