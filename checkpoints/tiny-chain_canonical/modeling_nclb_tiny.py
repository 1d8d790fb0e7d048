"""A small bidirectional transformer for masked diffusion (self-contained: copied into checkpoints).

Pre-norm blocks, rotary position embeddings (optionally plus learned absolute positions), no causal
mask. Positions come from the attention mask (position = cumsum(mask) - 1), and padded keys are
masked out of attention, so left padding does not change the outputs at real tokens.

Key/value cache: with `use_cache=True` a full pass also returns every layer's keys and values
(after the rotary embedding) of every column. Given those as `past_key_values`, a pass with
`query_positions` [B, Q] recomputes only those columns: at each layer their fresh keys and values
replace the cached ones at those columns, and they attend to every column. `query_positions`
alone (no cache) computes every column and returns the logits at those columns only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class NclbTinyConfig(PretrainedConfig):
    """Hyper-parameters of the tiny MDLM."""

    model_type = "nclb_tiny"

    def __init__(
        self,
        vocab_size: int = 100,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 512,
        max_position_embeddings: int = 256,
        rope_theta: float = 10000.0,
        absolute_positions: bool = False,
        layer_norm_eps: float = 1e-5,
        mask_token_id: int = 1,
        pad_token_id: int = 0,
        eos_token_id: int = 2,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.absolute_positions = absolute_positions
        self.layer_norm_eps = layer_norm_eps
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, **kwargs)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply rotary embeddings to x [B, H, N, D] (half-split convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class _Attention(nn.Module):
    def __init__(self, cfg: NclbTinyConfig) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, keep, past=None, query=None):
        """x [B, Q, d] at the columns `query` [B, Q] (every column when None); `past`: this
        layer's cached (keys, values) [B, H, N, D] of every column. Returns the output and the
        (keys, values) attended to."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if past is not None:
            index = query[:, None, :, None].expand_as(k)
            k = past[0].scatter(2, index, k)
            v = past[1].scatter(2, index, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.out(y.transpose(1, 2).reshape(b, n, d)), (k, v)


class _Block(nn.Module):
    def __init__(self, cfg: NclbTinyConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = _Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.hidden_size, cfg.intermediate_size),
            nn.GELU(),
            nn.Linear(cfg.intermediate_size, cfg.hidden_size),
        )

    def forward(self, x, cos, sin, keep, past=None, query=None):
        y, kv = self.attn(self.norm1(x), cos, sin, keep, past, query)
        x = x + y
        return x + self.mlp(self.norm2(x)), kv


class NclbTinyForMaskedLM(PreTrainedModel):
    """Bidirectional transformer: logits [B, N, V], position i predicts token i (unshifted)."""

    config_class = NclbTinyConfig
    base_model_prefix = "nclb_tiny"
    _supports_sdpa = True

    def __init__(self, config: NclbTinyConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.pos = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.absolute_positions
            else None
        )
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        query_positions: torch.Tensor | None = None,
        past_key_values: tuple | None = None,
        use_cache: bool = False,
        **kwargs,
    ) -> MaskedLMOutput:
        """input_ids [B, N]; attention_mask [B, N] (1/True = real token, 0/False = padding);
        query_positions [B, Q]: the columns whose logits come back (and, with past_key_values,
        the only columns recomputed); use_cache: also return every column's keys and values."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        real = attention_mask.bool()
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        cached = past_key_values is not None
        if cached:
            if query_positions is None:
                raise ValueError("past_key_values needs query_positions (the columns to recompute)")
            input_ids = input_ids.gather(1, query_positions)
            positions = positions.gather(1, query_positions)
        x = self.embed(input_ids)
        if self.pos is not None:
            x = x + self.pos(positions.clamp(max=self.config.max_position_embeddings - 1))
        # Rotary frequencies are recomputed per call rather than kept as a buffer: a non-persistent
        # buffer is left uninitialised by from_pretrained in transformers 5.x.
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        exponents = torch.arange(0, head_dim, 2, device=input_ids.device).float() / head_dim
        inv_freq = self.config.rope_theta ** (-exponents)
        angles = positions[:, None, :, None].float() * inv_freq
        cos, sin = angles.cos(), angles.sin()
        keep = real[:, None, None, :]
        layers = []
        for i, block in enumerate(self.blocks):
            past = past_key_values[i] if cached else None
            x, kv = block(x, cos, sin, keep, past, query_positions)
            layers.append(kv)
        if query_positions is not None and not cached:
            x = x.gather(1, query_positions.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        out = MaskedLMOutput(logits=self.lm_head(self.norm(x)))
        if use_cache and not cached:
            out["past_key_values"] = tuple(layers)
        return out
