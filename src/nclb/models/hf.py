"""Hugging Face checkpoints behind the MaskedLM interface (tiny, LLaDA, Dream)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Family:
    """What differs between checkpoint families.

    shifted: logits at i predict token i+1 (Dream), so they are moved right by one.
    uses_attention_mask: the remote code honours a padding mask.
    """

    name: str
    shifted: bool
    uses_attention_mask: bool


FAMILIES = {
    "tiny": Family("tiny", shifted=False, uses_attention_mask=True),
    "llada": Family("llada", shifted=False, uses_attention_mask=False),
    "dream": Family("dream", shifted=True, uses_attention_mask=True),
}


class HFCodec:
    """TextCodec over a transformers tokenizer."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        """Ids of `text` without special tokens."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        """Text of `ids` with special tokens dropped."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def shift_right(logits: torch.Tensor) -> torch.Tensor:
    """Align next-token logits so that position i predicts token i (position 0 copies itself)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
