"""The shipped tiny checkpoints reach their accuracy floor on 50 held-out examples (k=1 entropy)."""

from __future__ import annotations

import pytest

from nclb.config.compose import compose
from nclb.runs.runner import run

# Floors on 50 examples, a little under the 500-example numbers of checkpoints/README.md, so that
# a broken checkpoint, loader, canvas or scorer fails while sampling noise on 50 items does not.
# chain (any order) 95.2% on 500; chain_canonical, the less trained control, 74.6%.
FLOORS = {"arith": 0.9, "sudoku9": 0.92, "chain": 0.85, "chain_canonical": 0.6}


@pytest.mark.parametrize("task", sorted(FLOORS))
def test_shipped_checkpoint_reaches_its_floor(task, tmp_path):
    cfg = compose(
        "config",
        [
            "model=tiny",
            f"task={task}",
            "decoder=ktoken",
            "k=1",
            "limit=50",
            "batch_size=25",
            f"out_dir={tmp_path}",
        ],
    )
    summary = run(cfg)
    assert summary["n"] == 50
    assert summary["accuracy"] >= FLOORS[task]
    # one token per forward pass: NFE = number of masked positions
    assert summary["tokens_per_nfe"] == pytest.approx(1.0)
