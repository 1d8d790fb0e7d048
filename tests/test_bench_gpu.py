"""The cache bench on random-weight LLaDA shapes (scripts/bench_gpu.py), at small shapes on the
CPU: the positions each mode computes, the passes, the report and the command's errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nclb.errors import UserError
from nclb.experiments.bench_gpu import (
    LLADA_8B,
    SMALL,
    random_canvases,
    random_llada,
    render,
    run_bench,
)
from script_module import script

CPU = torch.device("cpu")


def test_each_mode_computes_the_positions_its_cache_leaves(one_torch_thread):
    s = SMALL
    bench = run_bench(s, CPU, torch.float32, n=4, batch_size=2)
    rows = {m.cache: m for m, _ in bench.rows}
    assert list(rows) == ["none", "prefix", "dual"]
    full, blocks = s.prompt + s.gen_length, s.gen_length // s.block
    # k=1, every position masked, equal prompts: every row of a batch is in the same block.
    prefix = blocks * full + sum(
        (s.block - 1) * (s.gen_length - j * s.block) for j in range(blocks)
    )
    per_example = {
        "none": s.gen_length * full,
        "prefix": prefix,
        "dual": blocks * full + (s.gen_length - blocks) * s.block,
    }
    for mode, m in rows.items():
        assert m.nfe == m.forward_rows == 4 * s.gen_length
        assert m.passes == m.forward_calls == 2 * s.gen_length and m.occupancy == 1.0
        assert m.computed == 4 * per_example[mode], mode
        assert m.refreshes == (0 if mode == "none" else 4 * blocks)
        assert 0 < m.forward_seconds <= m.seconds
    assert rows["dual"].refresh_share == 1 / s.block
    text = render(bench, 4, ["a note"])
    assert "| dual | 64 | 64 |" in text and "| 1.00x | 0.0 |" in text
    assert f"| {rows['dual'].computed_per_row:.1f} | 12.5% | 1.000 |" in text
    assert "hidden 32, 2 layers, 4 heads (2 key/value)" in text and "- a note" in text


def test_the_full_pass_of_the_own_forward_is_the_remote_codes(one_torch_thread):
    model = random_llada(SMALL, CPU, torch.float32)
    ids = torch.tensor([c.prompt + c.region for c in random_canvases(model, SMALL, 2)])
    assert (ids[:, : SMALL.prompt] != model.mask_id).all()
    mine, remote = model.logits(ids), model.lm.logits(ids)
    assert mine.shape == remote.shape == (2, ids.shape[1], SMALL.vocab)
    assert (mine - remote).abs().max() <= 1e-4


def test_the_command_writes_the_report(tmp_path, one_torch_thread):
    out = tmp_path / "bench-gpu.md"
    args = "--small --device cpu --n 2 --batch 2 --gen-length 16 --out".split()
    script("bench_gpu").main([*args, str(out)])
    text = out.read_text()
    assert "16 masked positions, block 8" in text and "| prefix |" in text
    assert "measured on a CPU: a smoke test of the command, not the GPU figures" in text


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--small", "--heads", "5"], "--hidden 32 must be a multiple of --heads 5"),
        (["--small", "--block", "0"], "--block must be at least 1"),
        (["--small", "--cache", ""], "--cache names no mode"),
        (["--small", "--cache", "dual,fast"], "fast is not a cache mode"),
    ],
)
def test_bad_flags_are_one_line_errors(args, needle, tmp_path):
    with pytest.raises(UserError, match=needle) as err:
        script("bench_gpu").main([*args, "--out", str(tmp_path / "x.md")])
    assert "\n" not in str(err.value)


def test_the_llada_8b_shapes_are_refused_on_a_cpu():
    assert LLADA_8B.parameters() > 8e9 and replace(LLADA_8B, layers=1).parameters() < 2e9
    with pytest.raises(UserError, match="8.02B parameters, too many for a CPU: run on a CUDA"):
        run_bench(LLADA_8B, CPU, torch.bfloat16, n=1, batch_size=1)
