"""The benchmark's timing hook, occupancy and report (on the exact oracle, so it is fast), and its
cache rows (on the tiny model, a few examples)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nclb.errors import UserError
from nclb.experiments.bench import (
    CACHE_DECODERS,
    CACHE_MODES,
    DECODERS,
    Workload,
    cache_modes,
    cache_verdict,
    load_workload,
    measure,
    render,
    verdict,
)
from script_module import script


def test_timing_hook_counts_every_forward_pass_and_the_report_has_the_ratios():
    w = load_workload("oracle", "toy", 8, "cpu")
    one = measure(w, "k=1", ["decoder=ktoken", "k=1"], 1)
    eight = measure(w, "k=1", ["decoder=ktoken", "k=1"], 8)
    # Batch 1: one pass per step of each example; batch 8: the 8 rows share each pass.
    assert one.forward_calls == one.passes == one.nfe == 8 * 6
    assert eight.forward_calls == 6 and eight.nfe == one.nfe
    assert one.occupancy == eight.occupancy == 1.0
    assert 0 < one.forward_seconds <= one.seconds
    assert one.gen_tokens == 8 * 6 and one.correct == 8
    k2 = measure(w, "k=2", ["decoder=ktoken", "k=2"], 8)
    assert k2.nfe == 8 * 3
    static = [measure(w, label, DECODERS[label], 8, False) for label in ("k=1", "k=2")]
    decoders = [eight, k2, *static]
    text = render({"torch": "x"}, "oracle toy", [one, eight], decoders, ["a note"])
    assert "| 8 |" in text and "x batch 1" in text and "sampler / forward" in text
    assert "| k=2 | continuous | 3.0 | 1.000 | 1.000 |" in text
    assert "| 2.00x |" in text
    assert "- a note" in text


def staggered(w: Workload) -> Workload:
    """The workload with the first 0-4 positions of each region pre-filled (from a palindrome
    of the oracle), so that the examples need 6 to 2 forward passes."""
    m = w.model.mask_id
    seq = [0, 1, 2, 2, 1, 0]
    items = [
        (ex, replace(c, region=seq[: i % 5] + [m] * (6 - i % 5)))
        for i, (ex, c) in enumerate(w.items)
    ]
    return replace(w, items=items)


def test_continuous_batching_fills_the_passes_that_static_batches_leave_half_empty():
    w = staggered(load_workload("oracle", "toy", 40, "cpu"))
    k1 = DECODERS["k=1"]
    on = measure(w, "MED lam=0.2", k1, 8)
    off = measure(w, "MED lam=0.2", k1, 8, continuous=False)
    assert on.outputs == off.outputs and on.nfe == off.nfe == 8 * (6 + 5 + 4 + 3 + 2)
    assert on.forward_rows == off.forward_rows == on.nfe
    assert off.forward_calls == 5 * 6  # each static batch runs as long as its slowest row
    assert on.forward_calls < off.forward_calls
    assert on.occupancy > 0.9 > off.occupancy
    exit_ = [measure(w, "k=1 + exit gamma=0.1", k1, 8, c) for c in (True, False)]
    ref = [measure(w, "k=1", k1, 8, c) for c in (True, False)]
    lines = verdict(ref[:1], [on, off, *exit_, *ref])
    assert lines[0].startswith("- occupancy of MED lam=0.2 at batch 8: ")
    assert f"{on.occupancy:.3f} with continuous batching, {off.occupancy:.3f} without" in lines[0]
    assert "(goal >= 0.9: met); with continuous batching 19 of 21 passes were full" in lines[0]
    assert "wall / NFE ratio" in lines[2]
    assert lines[-1].endswith("identical for 3 of 3 decoders")


@pytest.fixture(scope="module")
def tiny(one_torch_thread) -> Workload:
    return load_workload("tiny", "chain", 4, "cpu")


def masked_blocks(w: Workload, block: int) -> int:
    """Blocks holding a mask, summed over the examples (one refresh each under cache=block)."""
    mask = w.model.mask_id
    return sum(len({i // block for i, t in enumerate(c.region) if t == mask}) for _, c in w.items)


def test_cache_rows_time_both_forward_calls_and_count_each_step_once(tiny):
    med = DECODERS["MED lam=0.2"]
    ms = {mode: measure(tiny, "MED lam=0.2", [*med, f"cache={mode}"], 2) for mode in CACHE_MODES}
    block, g = 8, len(tiny.items[0][1].region)
    prompts = [len(c.prompt) for _, c in tiny.items]
    for m in ms.values():
        assert m.forward_rows == m.nfe and m.occupancy == m.nfe / (2 * m.passes)
        assert 0 < m.forward_seconds <= m.seconds
    none, prefix, dual = ms["none"], ms["prefix"], ms["dual"]
    assert none.forward_calls == none.passes and none.refreshes == 0
    assert none.ms_per_refresh_row is None and none.refresh_share == 0.0
    assert min(prompts) + g <= none.computed_per_row <= max(prompts) + g
    for m in (prefix, dual):
        # Rows admitted at different passes sit in different blocks: some steps refresh some
        # rows and read the others' cache, two model calls for one pass.
        assert m.forward_calls > m.passes
        assert m.refreshes == masked_blocks(tiny, block)
        assert 0 < m.refresh_seconds < m.forward_seconds
        assert m.ms_per_refresh_row > 0 and m.ms_per_cached_row > 0
    # A cached dual pass computes its block only; a refresh the whole row.
    full = dual.computed - (dual.nfe - dual.refreshes) * block
    assert dual.refreshes * (min(prompts) + g) <= full <= dual.refreshes * (max(prompts) + g)
    assert none.computed_per_row > prefix.computed_per_row > dual.computed_per_row
    rows = list(ms.values())
    as_k1 = replace(none, label="k=1")
    text = render({"torch": "x"}, "tiny chain", [as_k1], [as_k1], [], rows)
    assert "## Key/value cache, batch 2, continuous batching (greedy)" in text
    assert f"| MED lam=0.2 | dual | {dual.mean_nfe:.1f} |" in text
    assert f"| {none.examples_per_s:.1f} | 1.00x | - |" in text
    lines = cache_verdict(rows)
    assert lines[0].startswith("- occupancy of MED lam=0.2 at batch 2, continuous batching: ")
    assert f"{dual.occupancy:.3f} with cache=dual" in lines[0]
    ok = prefix.occupancy >= 0.9 and dual.occupancy >= 0.9
    assert lines[0].endswith(f"(goal >= 0.9 with the cache on: {'met' if ok else 'missed'})")
    assert lines[-1].startswith("- cache=dual: examples/s against the same decoder without cache")


def test_cache_modes_are_checked_in_one_line():
    assert cache_modes("none, dual") == ("none", "dual") and cache_modes("") == ()
    with pytest.raises(UserError, match="fast is not a cache mode; give a comma-separated"):
        cache_modes("dual,fast")


def test_the_script_measures_each_cache_decoder_and_reuses_the_no_cache_rows(tiny):
    bench = script("bench")
    k1 = measure(tiny, "k=1", DECODERS["k=1"], 64)
    rows = bench.measure_cache(tiny, ("none", "dual"), [k1])
    assert [(m.label, m.cache) for m in rows] == [
        (label, mode) for label in CACHE_DECODERS for mode in ("none", "dual")
    ]
    assert rows[0] is k1 and rows[1].forward_calls >= rows[1].passes


def test_the_script_refuses_cache_rows_a_model_cannot_serve_before_measuring():
    bench = script("bench")
    with pytest.raises(UserError, match="model=oracle has no key/value cache forward"):
        bench.main(["--model", "oracle", "--task", "toy", "--n", "4", "--cache", "dual"])
    with pytest.raises(UserError, match="--cache 'dual,fast': fast is not a cache mode"):
        bench.main(["--model", "oracle", "--task", "toy", "--n", "4", "--cache", "dual,fast"])
