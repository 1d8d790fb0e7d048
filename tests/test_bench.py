"""The benchmark's timing hook and report (on the exact oracle, so it is fast)."""

from __future__ import annotations

from nclb.bench import load_workload, measure, render, verdict


def test_timing_hook_counts_every_forward_pass_and_the_report_has_the_ratios():
    w = load_workload("oracle", "toy", 8, "cpu")
    one = measure(w, "k=1", ["decoder=ktoken", "k=1"], 1)
    eight = measure(w, "k=1", ["decoder=ktoken", "k=1"], 8)
    # Batch 1: one pass per step of each example; batch 8: the 8 rows share each pass.
    assert one.forward_calls == one.nfe == 8 * 6
    assert eight.forward_calls == 6 and eight.nfe == one.nfe
    assert 0 < one.forward_seconds <= one.seconds
    assert one.gen_tokens == 8 * 6 and one.correct == 8
    k2 = measure(w, "k=2", ["decoder=ktoken", "k=2"], 8)
    assert k2.nfe == 8 * 3
    text = render({"torch": "x"}, "oracle toy", [one, eight], [one, k2], ["a note"])
    assert "| 8 |" in text and "x batch 1" in text and "sampler / forward" in text
    assert "| k=2 | 3.0 | 2.00 | 1.000 |" in text
    assert "- a note" in text
    lines = verdict([one, eight])
    assert lines[0].startswith("- batch 8 vs batch 1:") and "goal >= 10x" in lines[0]
    assert len(lines) == 3
