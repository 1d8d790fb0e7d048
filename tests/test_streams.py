"""Per-example random streams: uniform, independent across steps, positions and purposes, and
a function of the stream id alone (never of the other rows)."""

from __future__ import annotations

import torch

from nclb.sampler.stats import position_stats
from nclb.sampler.streams import ORDER, TOKEN, row_keys, stream_id, uniforms


def test_stream_ids_are_stable_and_depend_on_seed_and_id():
    # A fixed value: the id must not change across processes, platforms or Python versions.
    assert stream_id(0, "arith-0") == 3003496943940153654
    assert len({stream_id(s, k) for s in (0, 1) for k in ("a", "b", 7)}) == 6


def test_uniforms_are_uniform_and_independent_of_the_other_rows():
    keys = row_keys([stream_id(3, i) for i in range(400)], "cpu")
    steps = torch.arange(400) % 7
    u = uniforms(keys[:, TOKEN], steps, 64)
    assert u.shape == (400, 64) and u.dtype == torch.float32
    assert 0 < float(u.min()) and float(u.max()) < 1
    counts = torch.histc(u, bins=10, min=0, max=1)
    expected = u.numel() / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 30, chi2  # 9 degrees of freedom: p < 1e-3
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    assert torch.equal(uniforms(keys[perm, TOKEN], steps[perm], 64), u[perm])
    assert torch.equal(uniforms(keys[:5, TOKEN], steps[:5], 64), u[:5])


def test_steps_positions_and_purposes_draw_different_numbers():
    keys = row_keys([stream_id(0, i) for i in range(200)], "cpu")
    zero = torch.zeros(200, dtype=torch.long)
    a = uniforms(keys[:, TOKEN], zero, 32)
    pairs = {
        "next step": uniforms(keys[:, TOKEN], zero + 1, 32),
        "other purpose": uniforms(keys[:, ORDER], zero, 32),
        "next position": torch.roll(a, 1, dims=1),
    }
    for what, b in pairs.items():
        corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
        assert abs(float(corr)) < 0.05, what
        assert float((a == b).float().mean()) < 0.01, what


def test_inverse_cdf_samples_follow_the_tempered_distribution():
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0, 3.0]).expand(1, 40000, 5).contiguous()
    keys = row_keys([stream_id(1, 0)], "cpu")
    u = uniforms(keys[:, TOKEN], torch.zeros(1, dtype=torch.long), 40000)
    for temperature, forbid in ((1.0, None), (2.0, 4)):
        s = position_stats(logits, temperature, forbid=forbid, uniform=u)
        p = torch.softmax(logits[0, 0] / temperature, -1)
        if forbid is not None:
            p[forbid] = 0
            p /= p.sum()
        freq = torch.bincount(s.token.flatten(), minlength=5) / s.token.numel()
        assert torch.allclose(freq, p, atol=0.01), (freq, p)
        assert torch.equal(
            s.logprob, torch.log_softmax(logits, -1).gather(-1, s.token[..., None])[..., 0]
        )
