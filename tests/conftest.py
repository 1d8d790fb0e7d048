"""Shared fixtures: small models whose behaviour is known exactly."""

from __future__ import annotations

import pytest
import torch

from nclb.models.kvcache import gather_columns
from nclb.models.oracle import CharCodec


class FixedLogitsModel:
    """A MaskedLM whose logits at the region come from a function of the region state."""

    def __init__(self, fn, vocab: int = 6, length: int = 4) -> None:
        self.fn = fn
        self.length = length
        self.mask_id, self.pad_id, self.eos_ids = vocab, vocab + 1, (vocab + 2,)
        self.vocab_size = vocab + 3
        self.supports_padding = True
        self.cached_forward = None
        self.device = torch.device("cpu")
        self.codec = CharCodec("abcdefghijklmnop"[:vocab])
        self.calls = 0
        self.rows = 0

    def prompt_ids(self, text: str) -> list[int]:
        return self.codec.encode(text)

    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.calls += 1
        self.rows += ids.shape[0]
        b, n = ids.shape
        out = torch.full((b, n, self.vocab_size), -1e9)
        out[:, n - self.length :, : self.mask_id] = self.fn(ids[:, n - self.length :])
        return out if columns is None else gather_columns(out, columns)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread avoids oversubscription on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
