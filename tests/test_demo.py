"""`make demo` (scripts/demo.py): the k=1 / k=2 / MED / early-exit contrast on the tiny tasks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def test_demo_prints_every_decoder_setting_for_each_task(tmp_path):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--limit", "2", "--tasks", "chain,sudoku9"]
        + ["--out-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith(("chain", "sudoku9"))]
    chain = [" ".join(row[1:-3]) for row in rows if row[0] == "chain"]
    assert chain == [
        "k=1 entropy",
        "k=2 entropy",
        "MED lam=0.2",
        "k=1 + exit gamma=0.1",
        "MED lam=0.2 + exit gamma=0.1",
    ]
    # sudoku9 has no answer block, so no early-exit rows
    assert [" ".join(row[1:-3]) for row in rows if row[0] == "sudoku9"] == chain[:3]
    assert all(row[-3] == "2" for row in rows)  # n per setting
