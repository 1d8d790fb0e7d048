"""nclb's own forward for LLaDA checkpoints, over the released parameter names.

What it follows in the released `modeling_llada.py`: the Llama-style block (`attn_norm`,
`q_proj` / `k_proj` / `v_proj`, `attn_out`, `ff_norm`, `ff_proj` (SiLU gate) times `up_proj`,
`ff_out`) under `model.transformer.blocks.<i>` (`block_groups.<g>.<j>` when blocks are grouped),
`wte`, `ln_f`, and the head `model.transformer.ff_out` (the embedding itself when
`weight_tying`); biases wherever the checkpoint has them (`include_bias`, `include_qkv_bias`);
RMS norms with `rms_norm_eps`; rotary at positions 0..N-1 with `rope_theta`, applied in float32
when `rope_full_precision`; `input_emb_norm` and `scale_logits`. The released attention ignores
the attention mask (every position attends to every other, padding included), and so does this
forward. Logits are not shifted. The released code takes no key/value cache (it asserts none is
passed), hence this forward.
"""

from __future__ import annotations

import math

from transformers import PreTrainedModel

from nclb.models.forwards.transformer import CachedTransformer
from nclb.models.forwards.weights import (
    Block,
    Named,
    Shape,
    TransformerWeights,
    UnsupportedCheckpoint,
)

# The released config's defaults (its ModelConfig), for fields a config may leave out.
DEFAULTS = {
    "rope": False,
    "alibi": False,
    "block_type": "sequential",
    "layer_norm_type": "default",
    "activation_type": "swiglu",
    "attention_layer_norm": False,
    "block_group_size": 1,
    "rope_full_precision": True,
    "input_emb_norm": False,
    "scale_logits": False,
    "weight_tying": True,
    "layer_norm_with_affine": True,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "n_kv_heads": None,
    "multi_query_attention": None,
}
# The settings this forward implements (those of the released LLaDA-8B checkpoints).
SUPPORTED = {
    "rope": True,
    "alibi": False,
    "block_type": "llama",
    "layer_norm_type": "rms",
    "activation_type": "silu",
    "attention_layer_norm": False,
}


def setting(config, key: str):
    """config.<key>, or the released default where the config leaves it out."""
    return getattr(config, key, DEFAULTS[key])


def block_name(config, layer: int) -> str:
    """The released module path of block `layer`."""
    group = int(setting(config, "block_group_size"))
    if group == 1:
        return f"model.transformer.blocks.{layer}"
    return f"model.transformer.block_groups.{layer // group}.{layer % group}"


def llada_weights(model: PreTrainedModel) -> TransformerWeights:
    """The LLaDA checkpoint's tensors by their released names (UnsupportedCheckpoint for a
    setting this forward does not implement)."""
    config = model.config
    for key, wanted in SUPPORTED.items():
        if str(setting(config, key)) != str(wanted):
            raise UnsupportedCheckpoint(
                f"the LLaDA checkpoint sets {key}={setting(config, key)!r}; nclb's own LLaDA "
                f"forward implements {key}={wanted!r} only"
            )
    named = Named(model.state_dict(), "LLaDA")
    eps = float(setting(config, "rms_norm_eps"))
    affine = bool(setting(config, "layer_norm_with_affine"))
    heads = int(config.n_heads)
    kv_heads = setting(config, "n_kv_heads") or (
        1 if setting(config, "multi_query_attention") else heads
    )
    blocks = []
    for layer in range(int(config.n_layers)):
        name = block_name(config, layer)
        blocks.append(
            Block(
                attn_norm=named.norm(f"{name}.attn_norm", eps, affine),
                q=named.linear(f"{name}.q_proj"),
                k=named.linear(f"{name}.k_proj"),
                v=named.linear(f"{name}.v_proj"),
                out=named.linear(f"{name}.attn_out"),
                mlp_norm=named.norm(f"{name}.ff_norm", eps, affine),
                gate=named.linear(f"{name}.ff_proj"),
                up=named.linear(f"{name}.up_proj"),
                down=named.linear(f"{name}.ff_out"),
            )
        )
    embed = named.tensor("model.transformer.wte.weight")
    tied = bool(setting(config, "weight_tying"))
    head = named.linear("model.transformer.wte" if tied else "model.transformer.ff_out")
    d_model = int(config.d_model)
    return TransformerWeights(
        shape=Shape(
            heads=heads,
            kv_heads=int(kv_heads),
            head_dim=d_model // heads,
            rope_theta=float(setting(config, "rope_theta")),
            rope_full_precision=bool(setting(config, "rope_full_precision")),
        ),
        embed=embed,
        blocks=blocks,
        final_norm=named.norm("model.transformer.ln_f", eps, affine),
        head=head,
        embed_scale=math.sqrt(d_model) if setting(config, "input_emb_norm") else 1.0,
        logit_scale=1 / math.sqrt(d_model) if setting(config, "scale_logits") else 1.0,
    )


def llada_forward(model: PreTrainedModel) -> CachedTransformer:
    """nclb's CachedForward for a loaded LLaDA model: unshifted logits, no attention mask,
    positions 0..N-1, as the released code."""
    return CachedTransformer(llada_weights(model), masks_padding=False, shifted=False)
