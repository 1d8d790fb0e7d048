"""nclb's own forward for Dream checkpoints, over the released parameter names.

What it follows in the released `modeling_dream.py`: a Qwen2-style decoder under `model.`
(`embed_tokens`, `layers.<i>.input_layernorm`, `self_attn.q_proj` / `k_proj` / `v_proj` with
biases, `o_proj` without, `post_attention_layernorm`, `mlp.gate_proj` / `up_proj` /
`down_proj` with SiLU), `model.norm` and `lm_head`; grouped-query attention
(`num_key_value_heads`); RMS norms with `rms_norm_eps`; default rotary with `rope_theta`
(angles in float32, applied in the model dtype). Attention is bidirectional under the 4-D mask
nclb passes the released code (nclb.models.padding: padded keys masked, positions counted from
the first real token). The output at position i predicts token i+1, so the logits of column c
are read from the hidden state at c-1 (column 0 from its own). The released code takes no
partial key/value update (only the append of an autoregressive cache), hence this forward.
"""

from __future__ import annotations

from transformers import PreTrainedModel

from nclb.models.forwards.transformer import CachedTransformer
from nclb.models.forwards.weights import (
    Block,
    Named,
    Shape,
    TransformerWeights,
    UnsupportedCheckpoint,
)


def dream_weights(model: PreTrainedModel) -> TransformerWeights:
    """The Dream checkpoint's tensors by their released names (UnsupportedCheckpoint for a
    setting this forward does not implement)."""
    config = model.config
    act = getattr(config, "hidden_act", "silu")
    if act != "silu":
        raise UnsupportedCheckpoint(
            f"the Dream checkpoint sets hidden_act={act!r}; nclb's own Dream forward implements "
            "hidden_act='silu' only"
        )
    scaling = getattr(config, "rope_scaling", None) or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind != "default":
        raise UnsupportedCheckpoint(
            f"the Dream checkpoint sets rope_scaling type {kind!r}; nclb's own Dream forward "
            "implements the default rotary embedding only"
        )
    named = Named(model.state_dict(), "Dream")
    eps = float(config.rms_norm_eps)
    blocks = []
    for layer in range(int(config.num_hidden_layers)):
        name = f"model.layers.{layer}"
        blocks.append(
            Block(
                attn_norm=named.norm(f"{name}.input_layernorm", eps),
                q=named.linear(f"{name}.self_attn.q_proj"),
                k=named.linear(f"{name}.self_attn.k_proj"),
                v=named.linear(f"{name}.self_attn.v_proj"),
                out=named.linear(f"{name}.self_attn.o_proj"),
                mlp_norm=named.norm(f"{name}.post_attention_layernorm", eps),
                gate=named.linear(f"{name}.mlp.gate_proj"),
                up=named.linear(f"{name}.mlp.up_proj"),
                down=named.linear(f"{name}.mlp.down_proj"),
            )
        )
    heads = int(config.num_attention_heads)
    return TransformerWeights(
        shape=Shape(
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(config.hidden_size) // heads,
            rope_theta=float(config.rope_theta),
            rope_full_precision=False,
        ),
        embed=named.tensor("model.embed_tokens.weight"),
        blocks=blocks,
        final_norm=named.norm("model.norm", eps),
        head=named.linear("lm_head"),
    )


def dream_forward(model: PreTrainedModel) -> CachedTransformer:
    """nclb's CachedForward for a loaded Dream model: padded keys masked, positions from the
    first real token, logits of column c from the hidden state at c-1."""
    return CachedTransformer(dream_weights(model), masks_padding=True, shifted=True)
