"""Table notes filled from the table's own rows (nclb.tables.notes) and tables rebuilt from the
summaries shipped beside them (nclb.tables.shipped)."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from nclb.errors import UserError
from nclb.tables.grid import grid_dir, grid_names
from nclb.tables.make import make_table
from nclb.tables.notes import PLACEHOLDER, note_texts, render_note

# A measured figure typed into a note: a decimal (not a setting such as lam=0.2), a speed-up,
# a percentage, points, an n.
TYPED = re.compile(r"(?<![=.\d])\d+\.\d|\d(\.\d+)?x\b|\d%|\d+ points|\bn=\d")


def test_no_grid_note_carries_a_typed_figure():
    import yaml

    assert grid_names()
    for name in grid_names():
        note = (yaml.safe_load((grid_dir() / f"{name}.yaml").read_text()) or {}).get("note")
        for text in note_texts(note):
            bare = PLACEHOLDER.sub("", text)
            assert not TYPED.search(bare), f"{name}: {TYPED.search(bare).group(0)!r} in {text!r}"


ROWS = pd.DataFrame(
    {
        "task": ["chain", "chain", "sudoku9"],
        "setting": ["k=1", "MED lam=0.2", "k=1"],
        "n": [500, 500, 300],
        "accuracy": [95.2, 94.0, 98.3],
        "ci_low": [93.0, 91.6, 96.2],
        "ci_high": [96.8, 95.8, 99.3],
        "mean_nfe": [56.0, 18.5, 42.9],
        "speedup": [1.0, 3.03, 1.0],
        "in_table": [True, True, True],
    }
)
NOTE = {
    "all": "Said of every model.",
    "tiny": [
        "Tiny rows (n={chain:k=1.n}).",
        {
            "text": "MED keeps {chain:MED lam=0.2.accuracy}% at "
            "{chain:k=1.nfe / chain:MED lam=0.2.nfe} fewer passes "
            "(k=1 {chain:k=1.accuracy - chain:MED lam=0.2.accuracy|.0f} points higher).",
            "check": "chain:MED lam=0.2 ~ chain:k=1",
        },
        "Paper: {paper:table2/llada/gsm8k/k=1.accuracy}% in {{braces}}.",
    ],
    "llada": "Only LLaDA's.",
}


def test_a_note_is_filled_from_the_rows_and_per_model():
    logged = []
    text = render_note(NOTE, "tiny", ROWS, logged.append)
    assert text == (
        "Said of every model. Tiny rows (n=500). MED keeps 94.0% at 3.03x fewer passes "
        "(k=1 1 points higher). Paper: 79.4% in {braces}."
    )
    assert not logged
    assert render_note(NOTE, "llada", ROWS, logged.append) == "Said of every model. Only LLaDA's."
    with pytest.raises(UserError, match="write GROUP:k=1"):
        render_note({"tiny": "{k=1.accuracy}"}, "tiny", ROWS)
    with pytest.raises(UserError, match="paper.yaml has no such number"):
        render_note({"tiny": "{paper:table2/llada/gsm8k/k=9.accuracy}"}, "tiny", ROWS)


def test_a_claim_the_rows_no_longer_support_is_a_warning():
    worse = ROWS.copy()
    worse.loc[1, ["accuracy", "ci_low", "ci_high"]] = [60.0, 55.6, 64.2]
    logged = []
    text = render_note(NOTE, "tiny", worse, logged.append)
    assert "MED keeps" not in text.split("\n\n")[0]
    assert logged == [text.split("\n\n")[1]]
    assert logged[0].startswith("WARNING: these rows no longer support the note's claim")
    assert "(chain:MED lam=0.2 ~ chain:k=1)" in logged[0]
    gone = render_note(NOTE, "tiny", ROWS[ROWS.task == "sudoku9"], logged.append)
    assert (
        "WARNING: a sentence of the note was left out (the table has no row 'k=1' in chain)" in gone
    )


THRESHOLDS = """
name: thresholds
title: Two thresholds
note:
  tiny:
    - "tau=0.5 takes {decoder.tau=0.5.nfe} passes, {decoder.tau=0.9.nfe / decoder.tau=0.5.nfe} fewer than tau=0.9 ({decoder.tau=0.9.nfe})."
models:
  tiny:
    - overrides: [model=oracle, task=toy, decoder=threshold, limit=6, batch_size=6]
      rows:
        - {series: threshold, sweep: {decoder.tau: [0.5, 0.9]}}
"""


def build(tmp_path, results, *extra):
    grid = tmp_path / "thresholds.yaml"
    grid.write_text(THRESHOLDS)
    return make_table(
        [str(grid), f"out_dir={tmp_path / 'runs'}", f"results={results}", *extra],
        log=lambda _: None,
    )


def note_numbers(results) -> list[str]:
    line = next(
        x for x in (results / "thresholds.md").read_text().splitlines() if "tau=0.5 takes" in x
    )
    return re.findall(r"(?<![=.\d])\d+\.\d+x?", line)


def test_a_table_rebuilt_from_shipped_summaries_is_byte_identical(tmp_path):
    results = tmp_path / "results"
    paths = build(tmp_path, results)
    shipped = results / "logs" / "thresholds.json"
    assert shipped in paths and len(json.loads(shipped.read_text())["runs"]) == 2
    first = {p.name: p.read_bytes() for p in paths}
    shutil.rmtree(tmp_path / "runs")  # a fresh clone: no run folders
    again = build(tmp_path, results, "run=false")
    assert {p.name: p.read_bytes() for p in again} == first
    assert not (tmp_path / "runs").exists()  # nothing was run
    with pytest.raises(UserError, match="2 runs are not logged yet"):
        build(tmp_path, tmp_path / "elsewhere", "run=false")


def test_the_notes_numbers_follow_the_rows(tmp_path):
    results = tmp_path / "results"
    build(tmp_path, results)
    table = pd.read_csv(results / "thresholds.csv")
    nfe = dict(zip(table.setting, table.mean_nfe))
    expected = [
        f"{nfe['decoder.tau=0.5']:.1f}",
        f"{nfe['decoder.tau=0.9'] / nfe['decoder.tau=0.5']:.2f}x",
        f"{nfe['decoder.tau=0.9']:.1f}",
    ]
    assert note_numbers(results) == expected
    # Another set of summaries: the shipped ones with other NFEs, the run folders gone.
    shipped = results / "logs" / "thresholds.json"
    data = json.loads(shipped.read_text())
    for summary, value in zip(data["runs"].values(), (3.0, 12.0)):
        summary["mean_nfe"] = value
    shipped.write_text(json.dumps(data))
    shutil.rmtree(tmp_path / "runs")
    build(tmp_path, results, "run=false")
    table = pd.read_csv(results / "thresholds.csv")
    nfe = dict(zip(table.setting, table.mean_nfe))
    assert sorted(nfe.values()) == [3.0, 12.0]
    assert note_numbers(results) == [
        f"{nfe['decoder.tau=0.5']:.1f}",
        f"{nfe['decoder.tau=0.9'] / nfe['decoder.tau=0.5']:.2f}x",
        f"{nfe['decoder.tau=0.9']:.1f}",
    ]
    assert note_numbers(results) != expected
