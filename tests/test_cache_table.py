"""The cache table's targets are computed from its rows, and its files are written from them."""

from __future__ import annotations

from nclb.experiments.cache_table import ACCURACY_DECODERS, Row, checks, write


def rows(dual_accuracy: float, dual_cpu: float) -> list[Row]:
    """chain rows for every decoder the targets read: no cache at 1 example per CPU second."""
    out = []
    for label in {*ACCURACY_DECODERS, "k=1"}:
        for mode, acc, speed in (("none", 0.95, 1.0), ("dual", dual_accuracy, dual_cpu)):
            r = Row("chain", label, mode, 500, acc, 0.02, 20.0, 900.0, speed, speed)
            out.append(r)
    for r in out:
        r.cpu_same = r.examples_per_cpu_s / 1.0
        r.cpu_k1 = r.examples_per_cpu_s / 1.0
        r.wall_same = r.wall_k1 = r.cpu_same
    return out


def test_the_targets_follow_the_rows():
    good = checks(rows(0.948, 9.0))
    targets, seen = good[:7], good[7:]
    ends = ("(within 1.0)", "(>= 3.0x)", "(>= 1.8x)", "point)")
    assert all(line.endswith(ends) for line in targets)
    assert not any("NOT met" in line for line in good)
    assert "9.00x the examples per CPU second of k=1" in targets[-1]
    assert seen == [
        "- chain, k=1: dual computes 100% of the positions of no cache (900 against 900 per "
        "example), at 9.00x its examples per CPU second"
    ]
    bad = checks(rows(0.92, 1.5))
    assert sum("NOT met" in line for line in bad) == 7
    assert "-3.0 points" in bad[0]


def test_the_table_files_hold_every_row_and_the_targets(tmp_path):
    md, csv = write(rows(0.95, 4.0), tmp_path, "make cache", "abc123")
    text = md.read_text()
    assert "git abc123" in text and text.count("| chain |") == 2 * (len(ACCURACY_DECODERS))
    assert "MED lam=0.2 + gamma 0.1 + dual: 4.00x" in text and "NOT met (>= 8x" in text
    assert len(csv.read_text().splitlines()) == 1 + 2 * len(ACCURACY_DECODERS)
