"""A small random-weight stand-in for Dream-7B's remote code (self-contained: copied into folders).

Same config field names, module and parameter names as the released `configuration_dream.py` /
`modeling_dream.py` (DreamConfig, DreamModel with `model` a DreamBaseModel and `lm_head`,
model_type "Dream"), a Qwen2-style block (RMSNorm, rotary, grouped-query attention with q/k/v
biases, SwiGLU), and the released interface:

- outputs are SHIFTED like a next-token model's: the output at position i is the prediction for
  token i+1, so the prediction for position i sits at i-1;
- `attention_mask` is None, the string "full", or a 4-D boolean [B, 1, N, N] tensor (True = may
  attend); `position_ids` [B, N] gives each token's rotary position;
- `model.get_decoder()` is the base model (ids -> `last_hidden_state` [B, N, D]) and
  `model.get_output_embeddings()` the head, so logits can be taken at some positions only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput


class DreamConfig(PretrainedConfig):
    """Dream hyper-parameters, with the released checkpoint's field names and 7B defaults."""

    model_type = "Dream"

    def __init__(
        self,
        vocab_size: int = 152064,
        hidden_size: int = 3584,
        intermediate_size: int = 18944,
        num_hidden_layers: int = 28,
        num_attention_heads: int = 28,
        num_key_value_heads: int = 4,
        max_position_embeddings: int = 131072,
        rope_theta: float = 1000000.0,
        rms_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        hidden_act: str = "silu",
        rope_scaling: dict | None = None,
        mask_token_id: int = 151666,
        pad_token_id: int = 151643,
        bos_token_id: int = 151643,
        eos_token_id: int = 151643,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.hidden_act = hidden_act
        self.rope_scaling = rope_scaling
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )


class DreamRMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def _rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding of x [B, H, N, D] at positions [B, N] (half-split convention)."""
    d = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions[:, None, :, None].float() * inv_freq
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class DreamAttention(nn.Module):
    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        d, self.heads, self.kv_heads = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
        )
        head = d // self.heads
        self.theta = cfg.rope_theta
        self.q_proj = nn.Linear(d, self.heads * head, bias=True)
        self.k_proj = nn.Linear(d, self.kv_heads * head, bias=True)
        self.v_proj = nn.Linear(d, self.kv_heads * head, bias=True)
        self.o_proj = nn.Linear(self.heads * head, d, bias=False)

    def forward(self, x, mask, positions):
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv_heads, -1).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv_heads, -1).transpose(1, 2)
        q, k = _rotary(q, positions, self.theta), _rotary(k, positions, self.theta)
        rep = self.heads // self.kv_heads
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
        return self.o_proj(y.transpose(1, 2).reshape(b, n, d))


class DreamMLP(nn.Module):
    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamDecoderLayer(nn.Module):
    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.input_layernorm = DreamRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = DreamAttention(cfg)
        self.post_attention_layernorm = DreamRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = DreamMLP(cfg)

    def forward(self, x, mask, positions):
        x = x + self.self_attn(self.input_layernorm(x), mask, positions)
        return x + self.mlp(self.post_attention_layernorm(x))


class DreamBaseModel(nn.Module):
    """ids [B, N] -> the final-norm hidden states [B, N, D] (`last_hidden_state`)."""

    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        if cfg.hidden_act != "silu" or cfg.rope_scaling is not None:
            raise ValueError("the Dream stand-in implements hidden_act='silu', rope_scaling=None")
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DreamDecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = DreamRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | str | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """attention_mask: None / "full" (attend everywhere) or bool [B, 1, N, N]."""
        b, n = input_ids.shape
        mask = attention_mask if isinstance(attention_mask, torch.Tensor) else None
        if mask is not None and (mask.dim() != 4 or mask.dtype != torch.bool):
            raise ValueError("attention_mask must be None, 'full' or a bool [B, 1, N, N] tensor")
        if position_ids is None:
            position_ids = torch.arange(n, device=input_ids.device).expand(b, n)
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, mask, position_ids)
        return BaseModelOutput(last_hidden_state=self.norm(x))


class DreamModel(PreTrainedModel):
    """ids [B, N] -> logits [B, N, V], shifted: the output at i predicts token i+1."""

    config_class = DreamConfig
    base_model_prefix = "model"
    _no_split_modules = ["DreamDecoderLayer"]

    def __init__(self, config: DreamConfig) -> None:
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def get_decoder(self) -> DreamBaseModel:
        return self.model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | str | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """attention_mask: None / "full" (attend everywhere) or bool [B, 1, N, N]."""
        hidden = self.model(input_ids, attention_mask, position_ids).last_hidden_state
        return MaskedLMOutput(logits=self.lm_head(hidden))
