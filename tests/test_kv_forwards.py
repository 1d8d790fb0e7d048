"""nclb's own LLaDA and Dream forwards (nclb.models.forwards) on the stand-in checkpoints, fp32.

One folder is loaded both ways: the remote code it ships, and nclb's forward reading the same
weights by their released names. The reference for a cached pass is written here, apart from
the forward: the remote code's own modules run layer by layer, attention written out, with the
stale keys and values put in outside the recomputed columns.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nclb.models.hf import FAMILIES, HFMaskedLM, load_hf_model
from nclb.models.kvcache import KVCache
from nclb.models.standin import build_standin, standin_config, standin_model, standin_tokenizer

TOL = 1e-4
N = 14


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def shake(model: nn.Module, seed: int) -> None:
    """Move every weight off its initial value (biases off zero, norm weights off one), in
    place, so a forward that skips one is seen."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.1)


def tied_biased_llada() -> HFMaskedLM:
    """A LLaDA stand-in with every bias and a head tied to the embedding, in memory."""
    tokenizer = standin_tokenizer("llada")
    config = standin_config("llada", tokenizer, kv_heads=2)
    config.include_bias, config.weight_tying = True, True
    torch.manual_seed(1)
    return HFMaskedLM(standin_model(config), tokenizer, FAMILIES["llada"])


def shaken(name: str, tmp_path_factory) -> HFMaskedLM:
    """The stand-in `name` (llada, dream: a folder loaded through load_hf_model; or
    llada-tied-biased), its weights shaken."""
    if name == "llada-tied-biased":
        model = tied_biased_llada()
    else:
        folder = build_standin(name, tmp_path_factory.mktemp(name), kv_heads=2)
        model = load_hf_model({"family": name, "path": str(folder), "device": "cpu"})
    shake(model.model, seed=len(name))
    assert model.cached_forward is not None, model.no_cache_reason
    return model


@pytest.fixture(scope="module", params=["llada", "llada-tied-biased", "dream"])
def lm(request, tmp_path_factory) -> HFMaskedLM:
    return shaken(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def dream(tmp_path_factory) -> HFMaskedLM:
    return shaken("dream", tmp_path_factory)


def batch(lm: HFMaskedLM, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [2, N] and the attention mask: row 0 has three columns of left padding."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 100, (2, N), generator=gen)
    ids[0, :3] = lm.pad_id
    real = torch.ones(2, N, dtype=torch.bool)
    real[0, :3] = False
    return ids, real


def at(values: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    return values.gather(1, columns[..., None].expand(-1, -1, values.shape[-1]))


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= TOL


def remote_logits(lm: HFMaskedLM, ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The remote code's logits, aligned so position i predicts token i (LLaDA gets no mask:
    its released code ignores it)."""
    with torch.no_grad():
        if lm.family.name == "llada":
            return lm.model(input_ids=ids).logits
        return lm.training_logits(ids, real)


def every(n: int, rows: int = 2) -> torch.Tensor:
    return torch.arange(n).expand(rows, n)


# Asked columns: non-contiguous, in no order, different per row (row 0 is left-padded).
ASKED = torch.tensor([[9, 4, 5, 12], [2, 13, 7, 6]])


def layers_of(lm: HFMaskedLM):
    """The remote code's modules per layer, as (attn_norm, q, k, v, out, mlp) plus its rotary
    (a function of x [B, H, N, D]), the final head and the head counts."""
    model, config = lm.model, lm.model.config
    if lm.family.name == "llada":
        t = model.model.transformer
        rotary = sys.modules[type(t["blocks"][0]).__module__]._rotary

        def mlp(block):
            return lambda x: block.ff_out(
                F.silu(block.ff_proj(block.ff_norm(x))) * block.up_proj(block.ff_norm(x))
            )

        layers = [
            (b.attn_norm, b.q_proj, b.k_proj, b.v_proj, b.attn_out, mlp(b)) for b in t["blocks"]
        ]
        head = t["wte"] if config.weight_tying else t["ff_out"]

        def final(x):
            return F.linear(t["ln_f"](x), head.weight, getattr(head, "bias", None))

        def rotate(x, real):
            return rotary(x, config.rope_theta, config.rope_full_precision)

        return layers, rotate, final, t["wte"], config.n_heads, config.n_kv_heads
    base = model.model
    rotary = sys.modules[type(base).__module__]._rotary

    def dream_mlp(layer):
        return lambda x: layer.mlp(layer.post_attention_layernorm(x))

    layers = [
        (
            lay.input_layernorm,
            lay.self_attn.q_proj,
            lay.self_attn.k_proj,
            lay.self_attn.v_proj,
            lay.self_attn.o_proj,
            dream_mlp(lay),
        )
        for lay in base.layers
    ]

    def dream_final(x):
        return model.lm_head(base.norm(x))

    def dream_rotate(x, real):
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        return rotary(x, positions, config.rope_theta)

    heads = config.num_attention_heads
    return layers, dream_rotate, dream_final, base.embed_tokens, heads, config.num_key_value_heads


def reference(
    lm: HFMaskedLM,
    ids: torch.Tensor,
    real: torch.Tensor,
    fresh: torch.Tensor | None = None,
    stale: KVCache | None = None,
) -> tuple[torch.Tensor, KVCache]:
    """Raw (unshifted) logits [B, N, V] of every column and each layer's keys and values,
    computed from the remote code's modules; with `stale`, the keys and values outside the
    bool [B, N] `fresh` are the stale ones."""
    layers, rotate, final, embed, heads, kv_heads = layers_of(lm)
    rows, n = ids.shape
    if lm.family.name == "llada":
        sees = torch.ones(rows, n, n, dtype=torch.bool)
    else:
        sees = real[:, None, :] | torch.eye(n, dtype=torch.bool)
    keys, values = [], []
    with torch.no_grad():
        x = embed(ids)
        for layer, (norm, q_proj, k_proj, v_proj, out, mlp) in enumerate(layers):
            h = norm(x)

            def split(y, count):
                return y.view(rows, n, count, -1).transpose(1, 2)

            q = rotate(split(q_proj(h), heads), real)
            k = rotate(split(k_proj(h), kv_heads), real)
            v = split(v_proj(h), kv_heads)
            if stale is not None:
                new = fresh[:, None, :, None]
                k = torch.where(new, k, stale.keys[layer])
                v = torch.where(new, v, stale.values[layer])
            keys.append(k)
            values.append(v)
            group = heads // kv_heads
            k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            weights = scores.masked_fill(~sees[:, None], float("-inf")).softmax(-1)
            x = x + out((weights @ v).transpose(1, 2).reshape(rows, n, -1))
            x = x + mlp(x)
        return final(x), KVCache(keys, values)


def aligned(lm: HFMaskedLM, raw: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Raw logits at `columns`, read where the family's head reads (Dream: one column before,
    column 0 its own)."""
    return at(raw, (columns - 1).clamp(min=0) if lm.family.shifted else columns)


def recomputed(lm: HFMaskedLM, columns: torch.Tensor) -> torch.Tensor:
    """Bool [B, N]: the columns a cached pass recomputes (Dream: each asked one and the one
    before it)."""
    fresh = torch.zeros(columns.shape[0], N, dtype=torch.bool)
    fresh.scatter_(1, columns, True)
    if lm.family.shifted:
        fresh.scatter_(1, (columns - 1).clamp(min=0), True)
    return fresh


def test_full_pass_equals_the_remote_code_at_every_column_and_a_subset(lm):
    ids, real = batch(lm)
    remote = remote_logits(lm, ids, real)
    out, cache = lm.cached_forward(ids, real, every(N), None)
    close(out, remote)
    sub, kept = lm.cached_forward(ids, real, ASKED, None)
    close(sub, at(remote, ASKED))
    assert isinstance(cache, KVCache) and cache.rows == 2 and cache.width == N
    _, ref_cache = reference(lm, ids, real)
    for mine, theirs in zip(cache.keys + cache.values, ref_cache.keys + ref_cache.values):
        close(mine, theirs)
    assert kept.width == N


def test_the_reference_is_the_remote_code(lm):
    """The hand-written reference agrees with the remote code on a full pass, so it can
    judge the cached passes below."""
    ids, real = batch(lm)
    raw, _ = reference(lm, ids, real)
    close(aligned(lm, raw, every(N)), remote_logits(lm, ids, real))


def test_cached_pass_right_after_a_refresh_equals_the_full_pass(lm):
    ids, real = batch(lm)
    full, cache = lm.cached_forward(ids, real, every(N), None)
    before = [k.clone() for k in cache.keys]
    out, back = lm.cached_forward(ids, real, ASKED, cache)
    close(out, at(full, ASKED))
    assert back is cache and all(torch.equal(a, b) for a, b in zip(before, cache.keys))


def test_cached_pass_after_changes_equals_recomputing_the_asked_columns_on_stale_kv(lm):
    ids, real = batch(lm)
    _, cache = lm.cached_forward(ids, real, every(N), None)
    changed = ids.clone()
    gen = torch.Generator().manual_seed(7)
    changed.scatter_(1, ASKED[:, :3], torch.randint(100, 150, (2, 3), generator=gen))
    out, _ = lm.cached_forward(changed, real, ASKED, cache)
    _, stale = reference(lm, ids, real)
    raw, _ = reference(lm, changed, real, recomputed(lm, ASKED), stale)
    close(out, aligned(lm, raw, ASKED))
    # The stale keys and values matter: a fresh full pass gives other logits.
    fresh = at(remote_logits(lm, changed, real), ASKED)
    assert (fresh - out).abs().max().item() > 1e-3


def test_hf_logits_at_columns_are_the_full_logits_there(lm):
    ids, real = batch(lm)
    mask = real if lm.supports_padding else None
    close(lm.logits(ids, mask, ASKED), at(lm.logits(ids, mask), ASKED))


def test_llada_forward_ignores_the_attention_mask(lm):
    if lm.family.name != "llada":
        pytest.skip("LLaDA only")
    ids, real = batch(lm)
    masked, _ = lm.cached_forward(ids, real, every(N), None)
    unmasked, _ = lm.cached_forward(ids, torch.ones_like(real), every(N), None)
    close(masked, unmasked)


def test_dream_logits_at_c_come_from_the_hidden_state_at_c_minus_1(dream):
    ids = torch.randint(0, 100, (2, N))
    real = torch.ones(2, N, dtype=torch.bool)
    with torch.no_grad():
        raw = dream.model(input_ids=ids).logits
    out, cache = dream.cached_forward(ids, real, every(N), None)
    close(out[:, 1:], raw[:, :-1])
    close(out[:, 0], raw[:, 0])
    # Asked for column c alone, the pass recomputes c-1 too: a new token at c-1 (not asked)
    # reaches c's logits, exactly as recomputing {c-1, c} against the stale cache.
    c = torch.tensor([[6], [11]])
    before, _ = dream.cached_forward(ids, real, c, cache)
    changed = ids.clone()
    changed.scatter_(1, c - 1, torch.tensor([[120], [130]]))
    after, _ = dream.cached_forward(changed, real, c, cache)
    assert (after - before).abs().max().item() > 1e-3
    _, stale = reference(dream, ids, real)
    fresh = torch.zeros(2, N, dtype=torch.bool).scatter_(1, torch.cat([c - 1, c], 1), True)
    expected, _ = reference(dream, changed, real, fresh, stale)
    close(after, at(expected, c - 1))
    # Column 0 reads its own hidden state in a cached pass too.
    zero, _ = dream.cached_forward(ids, real, torch.tensor([[0], [0]]), cache)
    close(zero[:, 0], raw[:, 0])


def test_dream_head_sees_the_asked_columns_only(dream):
    seen = []
    hook = dream.model.lm_head.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    try:
        ids, real = batch(dream)
        dream.logits(ids, real, ASKED)
        dream.cached_forward(ids, real, ASKED, None)
    finally:
        hook.remove()
    assert seen == [torch.Size([2, 4, dream.model.config.hidden_size])]  # the remote head


def test_cached_forward_suppresses_eos_like_logits(tmp_path):
    folder = build_standin("dream", tmp_path / "dream")
    lm = load_hf_model({"family": "dream", "path": str(folder), "device": "cpu"})
    lm.suppress_eos = True
    ids = torch.randint(0, 100, (1, 8))
    out, _ = lm.cached_forward(ids, torch.ones_like(ids, dtype=torch.bool), every(8, 1), None)
    assert out.dtype == torch.float32 and torch.isneginf(out[..., list(lm.eos_ids)]).all()
    torch.testing.assert_close(out, lm.logits(ids), atol=TOL, rtol=0)


def test_no_cached_forward_without_one_or_for_an_unsupported_checkpoint(tmp_path):
    folder = build_standin("dream", tmp_path / "dream")
    lm = load_hf_model({"family": "dream", "path": str(folder), "device": "cpu"})
    none = HFMaskedLM(lm.model, lm.tokenizer, dataclasses.replace(FAMILIES["dream"], forward=None))
    assert none.cached_forward is None and "has no key/value-cache forward" in none.no_cache_reason
    lm.model.config.rope_scaling = {"rope_type": "linear", "factor": 2.0}
    odd = HFMaskedLM(lm.model, lm.tokenizer, FAMILIES["dream"])
    assert odd.cached_forward is None and "rope_scaling" in odd.no_cache_reason
    lm.model.config.rope_scaling = None
    assert lm.cached_forward is not None and lm.no_cache_reason is None
    llada = tied_biased_llada()
    llada.model.config.block_type = "sequential"
    odd = HFMaskedLM(llada.model, llada.tokenizer, FAMILIES["llada"])
    assert odd.cached_forward is None and "block_type='sequential'" in odd.no_cache_reason

    class Wrapped(nn.Module):  # adapters wrap the model: its parameters get other names
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

    lm.model = Wrapped(lm.model)
    assert lm.cached_forward is None
    assert "'model.layers.0.input_layernorm.weight'" in lm.no_cache_reason
