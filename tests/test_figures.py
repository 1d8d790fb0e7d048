"""Figures stay readable: no series hidden behind another, point labels that do not collide,
a visible warning when a correlation rests on fewer than 20 failures."""

from __future__ import annotations

import json
from itertools import combinations

import pandas as pd
import pytest
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from nclb.errors import UserError
from nclb.tables.extras import draw_correlation, few_outcomes
from nclb.tables.figures import (
    draw_accuracy_vs_nfe,
    draw_nfe_saved_vs_gamma,
    pyplot,
)


def row(series, nfe, acc, swept, task="arith"):
    """One grid row as build_frame makes it (the fields the figures read)."""
    return {
        "model": "tiny",
        "task": task,
        "series": series,
        "mean_nfe": nfe,
        "accuracy": acc,
        "ci_low": acc - 2.3,
        "ci_high": min(100.0, acc + 0.4),
        "swept": swept,
    }


# The shipped figure3's arith panel: five MED points within 0.3 NFE of one another, two of
# them on top of k=8.
PILE_UP = pd.DataFrame(
    [row("k-token", nfe, acc, {"k": k}) for k, nfe, acc in
     [(1, 33.0, 99.5), (2, 17.0, 99.5), (4, 9.0, 99.5), (8, 5.03, 98.5)]]
    + [row("MED", nfe, acc, {"lam": lam}) for lam, nfe, acc in
       [(0.01, 6.2, 99.5), (0.05, 5.3, 99.5), (0.1, 5.15, 99.5), (0.2, 5.1, 99.5),
        (0.4, 5.05, 99.5), (0.8, 5.0, 98.5), (1.6, 5.0, 98.5)]]
)  # fmt: skip
GAMMAS = [None, 0.0001, 0.001, 0.01, 0.1, 1.0]
# Two early-exit series with the same accuracy at every γ (the curves that hid each other).
GAMMA_ROWS = pd.DataFrame(
    [row("k=1", 33 / (1 + i), 99.5, {"gamma": g}) for i, g in enumerate(GAMMAS)]
    + [row("MED lam=0.2", 9 / (1 + i), 99.5, {"gamma": g}) for i, g in enumerate(GAMMAS)]
)


def labels(ax) -> list[tuple[str, object]]:
    """(text, display box of the text alone) of every point label of the axes."""
    renderer = ax.figure.canvas.get_renderer()
    out = []
    for t in ax.texts:
        t.update_positions(renderer)
        out.append((t.get_text(), Text.get_window_extent(t, renderer)))
    return out


def markers(ax) -> list[tuple[int, float, float, str, bool, float]]:
    """(line index, x px, y px, marker, hollow, radius px) of every marker drawn in the axes."""
    out = []
    for i, line in enumerate(ax.lines):
        if line.get_marker() in (None, "None", "", "_", "|"):  # no marker, or error-bar caps
            continue
        hollow = str(line.get_markerfacecolor()) == "none"
        radius = line.get_markersize() * ax.figure.dpi / 72 / 2  # pixels
        for x, y in ax.transData.transform(line.get_xydata()):
            out.append((i, x, y, line.get_marker(), hollow, radius))
    return out


def assert_no_marker_hidden(ax, min_px: float = 0.0) -> None:
    """Markers of two series that (nearly) coincide differ in shape and one is hollow; with
    min_px, no two markers of different series are closer than that."""
    for a, b in combinations(markers(ax), 2):
        if a[0] == b[0]:
            continue
        close = abs(a[1] - b[1]) < 3 and abs(a[2] - b[2]) < 3
        if close:
            assert a[3] != b[3] and (a[4] or b[4]), f"a marker of series {a[0]} hides {b[0]}"
        if min_px:
            assert max(abs(a[1] - b[1]), abs(a[2] - b[2])) >= min_px


def test_accuracy_vs_nfe_labels_every_point_without_collisions():
    fig = draw_accuracy_vs_nfe(PILE_UP, "f3", "title", "footer")
    (ax,) = fig.axes
    fig.canvas.draw()
    placed = labels(ax)
    text = " ".join(t for t, _ in placed)
    for swept in PILE_UP.swept:
        ((key, value),) = swept.items()
        assert str(value) in text, f"{key}={value} has no label"
    assert "λ=0.05, 0.1, 0.2, 0.4" in text  # the coinciding MED points share one label
    for (ta, a), (tb, b) in combinations(placed, 2):
        assert not a.overlaps(b), f"labels {ta!r} and {tb!r} overlap"
    drawn = [(x, y, size) for _, x, y, _, _, size in markers(ax)]
    boxes = [Bbox.from_extents(x - s, y - s, x + s, y + s) for x, y, s in drawn]
    for t, box in placed:
        assert not any(box.overlaps(m) for m in boxes), f"{t!r} on a marker"
        assert ax.get_window_extent().contains(box.x0, box.y0)
    assert_no_marker_hidden(ax)
    pyplot().close(fig)


def test_gamma_series_are_moved_apart_and_no_exit_is_a_point():
    fig = draw_nfe_saved_vs_gamma(GAMMA_ROWS, "g", "title", "footer")
    fig.canvas.draw()
    ax_nfe, ax_acc = fig.axes
    for ax in (ax_nfe, ax_acc):
        assert_no_marker_hidden(ax, min_px=4.0)
        assert ax.get_xticklabels()[0].get_text() == "no exit"
    # Same accuracy at every γ, yet each series' markers are all drawn (6 per series).
    per_series = {}
    for i, *_ in markers(ax_acc):
        per_series[i] = per_series.get(i, 0) + 1
    assert sorted(per_series.values()) == [len(GAMMAS), len(GAMMAS)]
    pyplot().close(fig)


def correlation_rows(setup, n, accuracy):
    return [
        {
            "setup": setup,
            "n": n,
            "accuracy": 100 * accuracy,
            "fraction": f,
            "pearson_reward": f / 2,
            "spearman_reward": f / 3,
            "pearson_confidence": 0.05,
            "spearman_confidence": 0.05,  # equal to Pearson: drawn on top, must stay visible
            "mean_reward_correct": -0.1,
            "mean_reward_wrong": -1 - 4 * f,
        }
        for f in (0.0, 0.5, 1.0)
    ]


def test_few_failures_are_flagged_in_the_panel_titles():
    assert few_outcomes(300, 299 / 300) == "only 1 wrong of 300 generations (< 20)"
    assert few_outcomes(300, 0.07) is None and few_outcomes(300, 0.5) is None  # 21 / 150 each
    assert few_outcomes(100, 0.05) == "only 5 correct of 100 generations (< 20)"
    table = pd.DataFrame(
        correlation_rows("shipped", 300, 299 / 300) + correlation_rows("base", 300, 0.5)
    )
    fig = draw_correlation(table)
    titles = [ax.get_title() for ax in fig.axes]
    assert all("UNRELIABLE: rests on only 1 wrong of 300" in t for t in titles[:2])
    assert not any("UNRELIABLE" in t for t in titles[2:])
    for ax in fig.axes:
        assert_no_marker_hidden(ax)
    pyplot().close(fig)


def figure4_inputs(tmp_path):
    """A Figure 4 grid and its logged `nclb trace-score` summary (1 wrong of 300)."""
    from nclb.config.compose import compose

    out = tmp_path / "scores"
    out.mkdir()
    grid = tmp_path / "f4.yaml"
    grid.write_text(
        "name: f4\nkind: correlation\ntitle: Figure 4\npaper: figure4\nmodels:\n  tiny:\n"
        f"    - label: shipped\n      overrides: [model=tiny, task=arith, n=300, out_dir={out}]\n"
    )
    cfg = compose("trace_score", ["model=tiny", "task=arith", "n=300", f"out_dir={out}"])
    rows = [{k: v for k, v in r.items() if k not in ("setup", "accuracy")}
            for r in correlation_rows("shipped", 300, 299 / 300)]  # fmt: skip
    summary = {"n": 300, "accuracy": 299 / 300, "correlations": rows, "config": cfg, "git": "a"}
    (out / "summary.json").write_text(json.dumps(summary))
    return grid


def test_figure4_markdown_warns_about_few_failures(tmp_path, monkeypatch):
    from nclb.config import REPO_ROOT
    from nclb.tables import committed
    from nclb.tables.make import make_table

    grid = figure4_inputs(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setattr(committed, "uncommitted_code", lambda root: [])
    make_table([str(grid), "run=false", f"results={results}"], log=lambda _: None)
    text = (results / "f4.md").read_text()
    assert "WARNING, shipped: the correlations rest on only 1 wrong of 300 generations" in text
    assert (results / "f4.png").stat().st_size > 0 and "UNCOMMITTED" not in text
    # Uncommitted code: refused for the repository's results/, stamped elsewhere.
    monkeypatch.setattr(committed, "uncommitted_code", lambda root: ["src/nclb/x.py"])
    with pytest.raises(UserError, match="uncommitted changes; commit them first"):
        make_table([str(grid), "run=false", f"results={REPO_ROOT / 'results'}"], log=print)
    make_table([str(grid), "run=false", f"results={results}"], log=lambda _: None)
    assert "[UNCOMMITTED CODE: src/nclb/x.py]" in (results / "f4.md").read_text()


def test_saving_the_same_figure_twice_gives_the_same_bytes(tmp_path):
    from nclb.tables.figures import save

    def draw(out):
        fig, ax = pyplot().subplots()
        ax.plot([1, 2, 3], [3, 1, 2], marker="o", label="k-token")
        ax.legend()
        return save(fig, out, "same", "A title", "the footer")

    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_decoder_front_is_panels_with_labelled_points_and_plain_ticks(tmp_path):
    from PIL import Image

    from nclb.tables.front import front_figure

    rows = []
    for panel in ("chain", "chain verify", "sudoku9"):
        for series, key, values in (("MED", "lam", (0.05, 0.2, 0.8)), ("EB", "lam", (0.1, 0.4))):
            for i, v in enumerate(values):
                acc = 90.0 - 10 * i - (5 if series == "EB" else 0)
                rows.append(
                    {
                        "panel": panel,
                        "split": "test",
                        "series": series,
                        "setting": f"{series} {key}={v}",
                        "swept": {key: v},
                        "accuracy": acc,
                        "ci_low": acc - 2,
                        "ci_high": acc + 2,
                        "mean_nfe": 40.0 / (i + 1),
                        "on_front": not (series == "EB" and i == 1),
                    }
                )
    frame = pd.DataFrame(rows)
    frame.attrs["reference"] = "MED"
    png, svg = front_figure(frame, tmp_path, "front", "Fronts", "footer")
    width, height = Image.open(png).size
    assert width <= 2000 and height >= width / 2  # two panels a row, not a strip
    text = svg.read_text()
    assert "λ=0.2" in text and "a setting off its decoder" in text and "MED: its front" in text
    assert "10^" not in text and "times10" not in text  # plain tick labels
