"""Partial-trace scoring (Figure 4): correlations, partial states, the command end to end."""

from __future__ import annotations

import csv
import math

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nclb.config import config_dir
from nclb.experiments.trace_score import (
    partial_states,
    pearson,
    ranks,
    spearman,
    trace_positions,
    trace_score,
)
from nclb.sampler.loop import Generation, StepRecord
from nclb.types import Canvas

M, EOS = 9, 8  # mask and eos ids of the synthetic canvas below


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_correlations_by_hand():
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    x, y = [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]
    # point-biserial: sum of cross products 2, sum of squares 5 (x) and 1 (y)
    assert pearson(x, y) == pytest.approx(2 / math.sqrt(5), abs=1e-12)
    assert spearman([10.0, 20.0, 30.0, 1000.0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.0)
    assert pearson([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1.0, 2.0], [1.0, 1.0]))  # constant correctness
    assert spearman([float("nan"), 1.0, 2.0], [0.0, 0.0, 1.0]) == pytest.approx(1.0)


def test_partial_trace_keeps_the_first_committed_tokens():
    # region: 5 reasoning slots, a pre-filled delimiter token (7), an answer block of 2
    canvas = Canvas(prompt=[0], region=[M, M, M, M, M, 7, M, M], answer=(6, 8))
    steps = [
        StepRecord(0, [0], [3], [math.log(0.5)], [0.0]),
        StepRecord(1, [2, 1], [5, 4], [math.log(0.9), math.log(0.7)], [0.0, 0.0]),
        StepRecord(2, [3], [EOS], [0.0], [0.0]),
        StepRecord(3, [4], [EOS], [0.0], [0.0]),
        StepRecord(4, [6, 7], [1, 2], [0.0, 0.0], [0.0, 0.0]),
    ]
    gen = Generation(region=[3, 4, 5, EOS, EOS, 7, 1, 2], nfe=5, steps=steps)
    order = trace_positions(canvas, gen, M, (EOS,))
    assert order == [0, 1, 2]  # three trace tokens before the first eos, in commit order
    gold = [0, 0, 0, 0, 0, 7, 6, 6]
    state, conf = partial_states(canvas, gen, gold, order, 0.5)  # round(1.5) = 2 tokens
    assert state == [3, 4, M, M, M, 7, 6, 6]
    assert conf == pytest.approx((0.5 + 0.7) / 2)
    state, conf = partial_states(canvas, gen, gold, order, 0.0)
    assert state == [M, M, M, M, M, 7, 6, 6] and math.isnan(conf)


def test_trace_score_writes_csvs_on_tiny_arith(tmp_path):
    overrides = ["task=arith", "n=6", "fractions=[0.0,0.5,1.0]", "threads=1", f"out_dir={tmp_path}"]
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = OmegaConf.to_container(compose("trace_score", overrides=overrides), resolve=True)
    table = trace_score(cfg)
    assert [r["fraction"] for r in table] == [0.0, 0.5, 1.0]
    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert len(rows) == 18
    for r in rows:
        # the trace is the scratchpad: 9 tokens per step ("ab+cd=ef;"), then eos
        assert int(r["trace_tokens"]) % 9 == 0 and int(r["trace_tokens"]) in (18, 27)
        assert int(r["kept"]) == int(float(r["fraction"]) * int(r["trace_tokens"]) + 0.5)
        assert float(r["reward"]) <= 0
        if float(r["fraction"]) == 1.0 and r["correct"] == "1":
            assert float(r["reward"]) > -0.1  # a full correct trace makes a* near certain
    assert (tmp_path / "correlations.csv").is_file()


def test_an_undefined_correlation_says_why():
    from nclb.experiments.trace_score import undefined_lines, undefined_reason

    assert undefined_reason([1.0, 2.0], [1.0, 1.0], "reward") == (
        "every answer is correct: correctness has no variance"
    )
    assert undefined_reason([1.0, 2.0], [0.0, 0.0], "reward").startswith("every answer is wrong")
    assert undefined_reason([3.0, 3.0], [0.0, 1.0], "reward") == (
        "the reward is the same for every generation: it has no variance"
    )
    assert undefined_reason([float("nan"), 1.0], [0.0, 1.0], "reward") == (
        "fewer than 2 generations have a finite reward"
    )
    assert undefined_reason([1.0, 2.0], [0.0, 1.0], "reward") is None
    rows = [
        {"fraction": f, "correct": True, "reward": r, "confidence": r}
        for f in (0.0, 1.0)
        for r in (1.0, 2.0)
    ]
    assert undefined_lines(rows, [0.0, 1.0]) == [
        "  correlations undefined (nan) at f=0.00, 1.00: every answer is correct: "
        "correctness has no variance"
    ]
