"""A small random-weight stand-in for LLaDA-8B's remote code (self-contained: copied into folders).

Same config field names and class names as the released `configuration_llada.py` /
`modeling_llada.py` (LLaDAConfig, LLaDAModelLM, model_type "llada"), a Llama-style block
(RMSNorm, rotary, SwiGLU), and, like the released code, NO use of the attention mask: every
position attends to every other one, padding included. Logits are not shifted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class LLaDAConfig(PretrainedConfig):
    """LLaDA hyper-parameters, with the released checkpoint's field names and 8B defaults."""

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_heads: int = 32,
        n_kv_heads: int | None = None,
        n_layers: int = 32,
        mlp_hidden_size: int = 12288,
        vocab_size: int = 126464,
        embedding_size: int | None = None,
        max_sequence_length: int = 4096,
        rope_theta: float = 500000.0,
        rms_norm_eps: float = 1e-5,
        init_std: float = 0.02,
        weight_tying: bool = False,
        mask_token_id: int = 126336,
        pad_token_id: int = 126081,
        eos_token_id: int = 126081,
        **kwargs,
    ) -> None:
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        self.n_layers = n_layers
        self.mlp_hidden_size = mlp_hidden_size
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size or vocab_size
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.init_std = init_std
        self.weight_tying = weight_tying
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, **kwargs)


class _RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def _rotary(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding of x [B, H, N, D] at positions 0..N-1 (half-split convention)."""
    n, d = x.shape[-2], x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = torch.arange(n, device=x.device, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class _Block(nn.Module):
    """One Llama-style block with the released parameter names (q_proj ... ff_out)."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        d, head = cfg.d_model, cfg.d_model // cfg.n_heads
        self.heads, self.kv_heads, self.theta = cfg.n_heads, cfg.n_kv_heads, cfg.rope_theta
        self.attn_norm = _RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * head, bias=False)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * head, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = _RMSNorm(d, cfg.rms_norm_eps)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.k_proj(h).view(b, n, self.kv_heads, -1).transpose(1, 2)
        v = self.v_proj(h).view(b, n, self.kv_heads, -1).transpose(1, 2)
        q, k = _rotary(q, self.theta), _rotary(k, self.theta)
        rep = self.heads // self.kv_heads
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        # Bidirectional and unmasked, as in the released code: padding is attended to.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        x = x + self.attn_out(y.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class _Transformer(nn.Module):
    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(cfg.embedding_size, cfg.d_model),
                "blocks": nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers)),
                "ln_f": _RMSNorm(cfg.d_model, cfg.rms_norm_eps),
                "ff_out": nn.Linear(cfg.d_model, cfg.embedding_size, bias=False),
            }
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = self.transformer
        x = t["wte"](input_ids)
        for block in t["blocks"]:
            x = block(x)
        return t["ff_out"](t["ln_f"](x))


class LLaDAModelLM(PreTrainedModel):
    """ids [B, N] -> logits [B, N, V]; position i predicts token i; attention_mask is ignored."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["_Block"]

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__(config)
        self.model = _Transformer(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.init_std)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer["wte"]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`attention_mask` is accepted and ignored, like the released LLaDA code."""
        return CausalLMOutputWithPast(logits=self.model(input_ids))
