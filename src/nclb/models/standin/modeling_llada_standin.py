"""A small random-weight stand-in for LLaDA-8B's remote code (self-contained: copied into folders).

Same config field names, module and parameter names as the released `configuration_llada.py` /
`modeling_llada.py` (LLaDAConfig, LLaDAModelLM with `model` a LLaDAModel whose `transformer`
holds `wte`, `blocks` of LLaDALlamaBlock, `ln_f` and `ff_out`; model_type "llada"), a
Llama-style block (RMSNorm, rotary, SwiGLU), and, like the released code, NO use of the
attention mask: every position attends to every other one, padding included. Logits are not
shifted. Of the released config's switches it implements `include_bias`, `include_qkv_bias`,
`bias_for_layer_norm`, `weight_tying` and `rope_full_precision`; the others are fixed at the
released checkpoint's values (`rope`, `block_type="llama"`, `layer_norm_type="rms"`, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

# Released config switches the stand-in implements at one value (the LLaDA-8B checkpoints').
FIXED = {
    "rope": True,
    "alibi": False,
    "block_type": "llama",
    "block_group_size": 1,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "activation_type": "silu",
    "attention_layer_norm": False,
    "input_emb_norm": False,
    "scale_logits": False,
    "multi_query_attention": None,
}


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
        include_bias: bool = False,
        include_qkv_bias: bool = False,
        bias_for_layer_norm: bool | None = False,
        rope_full_precision: bool = True,
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
        self.include_bias = include_bias
        self.include_qkv_bias = include_qkv_bias
        self.bias_for_layer_norm = bias_for_layer_norm
        self.rope_full_precision = rope_full_precision
        for key, value in FIXED.items():
            if kwargs.pop(key, value) != value:
                raise ValueError(f"the LLaDA stand-in implements {key}={value!r} only")
            setattr(self, key, value)
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, **kwargs)


class RMSLayerNorm(nn.Module):
    def __init__(self, size: int, eps: float, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        return self.weight * y if self.bias is None else self.weight * y + self.bias


def _norm(cfg: LLaDAConfig) -> RMSLayerNorm:
    """A layer norm with a bias when bias_for_layer_norm (None: as include_bias) says so."""
    bias = cfg.bias_for_layer_norm
    return RMSLayerNorm(cfg.d_model, cfg.rms_norm_eps, cfg.include_bias if bias is None else bias)


def _rotary(x: torch.Tensor, theta: float, full_precision: bool) -> torch.Tensor:
    """Rotary embedding of x [B, H, N, D] at positions 0..N-1 (half-split convention), computed
    in float32 when `full_precision`."""
    y = x.float() if full_precision else x
    n, d = y.shape[-2], y.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d, 2, device=y.device, dtype=torch.float32) / d)
    angles = torch.arange(n, device=y.device, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = angles.cos().to(y.dtype), angles.sin().to(y.dtype)
    y1, y2 = y.chunk(2, dim=-1)
    return torch.cat([y1 * cos - y2 * sin, y2 * cos + y1 * sin], dim=-1).to(x.dtype)


class LLaDALlamaBlock(nn.Module):
    """One Llama-style block with the released parameter names (q_proj ... ff_out)."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        d, head = cfg.d_model, cfg.d_model // cfg.n_heads
        self.heads, self.kv_heads, self.theta = cfg.n_heads, cfg.n_kv_heads, cfg.rope_theta
        self.full_precision = cfg.rope_full_precision
        qkv, bias = cfg.include_bias or cfg.include_qkv_bias, cfg.include_bias
        self.attn_norm = _norm(cfg)
        self.q_proj = nn.Linear(d, d, bias=qkv)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * head, bias=qkv)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * head, bias=qkv)
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ff_norm = _norm(cfg)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=bias)
        self.up_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=bias)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.k_proj(h).view(b, n, self.kv_heads, -1).transpose(1, 2)
        v = self.v_proj(h).view(b, n, self.kv_heads, -1).transpose(1, 2)
        q = _rotary(q, self.theta, self.full_precision)
        k = _rotary(k, self.theta, self.full_precision)
        rep = self.heads // self.kv_heads
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        # Bidirectional and unmasked, as in the released code: padding is attended to.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        x = x + self.attn_out(y.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDAModel(nn.Module):
    """ids [B, N] -> logits [B, N, V] through `transformer` (wte, blocks, ln_f, ff_out)."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.weight_tying = cfg.weight_tying
        parts = {
            "wte": nn.Embedding(cfg.embedding_size, cfg.d_model),
            "blocks": nn.ModuleList(LLaDALlamaBlock(cfg) for _ in range(cfg.n_layers)),
            "ln_f": _norm(cfg),
        }
        if not cfg.weight_tying:
            parts["ff_out"] = nn.Linear(cfg.d_model, cfg.embedding_size, bias=cfg.include_bias)
        self.transformer = nn.ModuleDict(parts)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = self.transformer
        x = t["wte"](input_ids)
        for block in t["blocks"]:
            x = block(x)
        x = t["ln_f"](x)
        if self.weight_tying:
            return F.linear(x, t["wte"].weight)
        return t["ff_out"](x)


class LLaDAModelLM(PreTrainedModel):
    """ids [B, N] -> logits [B, N, V]; position i predicts token i; attention_mask is ignored."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDALlamaBlock"]

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.init_std)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer["wte"]

    def get_output_embeddings(self) -> nn.Module:
        t = self.model.transformer
        return t["wte"] if self.config.weight_tying else t["ff_out"]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`attention_mask` is accepted and ignored, like the released LLaDA code."""
        return CausalLMOutputWithPast(logits=self.model(input_ids))
