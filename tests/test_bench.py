"""The benchmark's timing hook, occupancy and report (on the exact oracle, so it is fast)."""

from __future__ import annotations

from dataclasses import replace

from nclb.experiments.bench import DECODERS, Workload, load_workload, measure, render, verdict


def test_timing_hook_counts_every_forward_pass_and_the_report_has_the_ratios():
    w = load_workload("oracle", "toy", 8, "cpu")
    one = measure(w, "k=1", ["decoder=ktoken", "k=1"], 1)
    eight = measure(w, "k=1", ["decoder=ktoken", "k=1"], 8)
    # Batch 1: one pass per step of each example; batch 8: the 8 rows share each pass.
    assert one.forward_calls == one.nfe == 8 * 6
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
