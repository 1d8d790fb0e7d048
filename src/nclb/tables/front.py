"""Accuracy-vs-NFE fronts of decoders (`nclb table decoder_front`).

A front grid lists, per panel, the same decoder sweeps twice: on a validation split (a held-out
set drawn with another seed) and on the test set. Each decoder's Pareto front (its settings that
no other of its settings beats on both accuracy and NFE) is computed from the test runs, and the
comparison with the reference decoder is made without looking at the test set: a decoder's
setting is chosen on the validation runs, then read off the test runs.

- at the anchor's accuracy: the cheapest setting whose validation accuracy reaches the anchor's;
  its test NFE against the anchor's (NFE ratio) and their test accuracies, and the same against
  the reference decoder's front: its cheapest setting as accurate on validation as that one;
- at the anchor's NFE: the most accurate setting whose validation NFE is at most the anchor's;
  its test accuracy against the anchor's.

A difference whose 95% Wilson intervals overlap is reported as inside the noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nclb.errors import UserError
from nclb.registry import register
from nclb.runs.sharding import join
from nclb.tables.grid import Grid, skipped_notes

SPLITS = ("validation", "test")


def pareto_flags(accuracy: list[float], nfe: list[float]) -> list[bool]:
    """For each point, whether no other point is at least as accurate and at most as costly,
    and strictly better in one of the two."""
    flags = []
    for a, n in zip(accuracy, nfe):
        beaten = any((a2 >= a and n2 <= n) and (a2 > a or n2 < n) for a2, n2 in zip(accuracy, nfe))
        flags.append(not beaten)
    return flags


def label_frame(frame: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Add the panel and split of every row (from its group) and its on-front flag."""
    panels, splits = [], []
    for g in frame.group:
        spec = grid.groups[int(g)]
        split = spec.get("split", "test")
        if split not in SPLITS:
            raise UserError(f"grid {grid.name}: group split {split!r} is not one of {SPLITS}")
        panels.append(spec.get("panel") or spec.get("label") or f"group {g}")
        splits.append(split)
    frame = frame.assign(panel=panels, split=splits)
    frame["on_front"] = False
    for _, part in frame.groupby(["panel", "split", "series"], sort=False):
        flags = pareto_flags(list(part.accuracy), list(part.mean_nfe))
        frame.loc[part.index, "on_front"] = flags
    return frame


def overlaps(a: pd.Series, b: pd.Series) -> bool:
    """Whether two rows' 95% accuracy intervals overlap."""
    return not (a.ci_low > b.ci_high or b.ci_low > a.ci_high)


def describe(row: pd.Series) -> str:
    """'EB lam=0.4: 91.2% [88.4, 93.4] at NFE 12.3'."""
    return (
        f"{row.setting}: {row.accuracy:.1f}% [{row.ci_low:.1f}, {row.ci_high:.1f}] "
        f"at NFE {row.mean_nfe:.1f}"
    )


def compare(panel: pd.DataFrame, anchor: str, reference: str) -> list[str]:
    """The validation-chosen comparisons of every other decoder with the anchor row."""
    val, test = panel[panel.split == "validation"], panel[panel.split == "test"]
    if anchor not in set(val.setting) or anchor not in set(test.setting):
        raise UserError(f"the anchor {anchor!r} needs a validation and a test run in every panel")
    a_val = val[val.setting == anchor].iloc[0]
    a_test = on_test(test, anchor)
    lines = [f"Anchor (test) {describe(a_test)}."]
    for series, rows in val.groupby("series", sort=False):
        if series == reference:
            continue
        reach = rows[rows.accuracy >= a_val.accuracy]
        if reach.empty:
            lines.append(
                f"{series}: no setting reaches the anchor's validation accuracy "
                f"({a_val.accuracy:.1f}%)."
            )
        else:
            chosen = reach.sort_values("mean_nfe").iloc[0]
            pick = on_test(test, chosen.setting)
            ratio = a_test.mean_nfe / pick.mean_nfe
            noise = "inside the noise" if overlaps(pick, a_test) else "outside the noise"
            lines.append(
                f"{series} at the anchor's accuracy (chosen on validation): {describe(pick)}; "
                f"{ratio:.2f}x fewer NFE than the anchor, accuracy difference "
                f"{pick.accuracy - a_test.accuracy:+.1f} points ({noise}). "
                + against_front(chosen, pick, val, test, reference)
            )
        cheap = rows[rows.mean_nfe <= a_val.mean_nfe]
        if cheap.empty:
            lines.append(f"{series}: no setting is as cheap as the anchor on validation.")
            continue
        pick = on_test(test, cheap.sort_values("accuracy").iloc[-1].setting)
        noise = "inside the noise" if overlaps(pick, a_test) else "outside the noise"
        lines.append(
            f"{series} at the anchor's NFE (chosen on validation): {describe(pick)}; "
            f"{pick.accuracy - a_test.accuracy:+.1f} points against the anchor ({noise})."
        )
    return lines


def on_test(test: pd.DataFrame, setting: str) -> pd.Series:
    """The test-split row of a setting (chosen on validation)."""
    return test[test.setting == setting].iloc[0]


def against_front(
    chosen: pd.Series, pick: pd.Series, val: pd.DataFrame, test: pd.DataFrame, reference: str
) -> str:
    """A setting (its validation row `chosen`, its test row `pick`) against the reference
    decoder's whole front, not only its anchor: the cheapest reference setting whose validation
    accuracy reaches the chosen one's, read on test."""
    ref = val[(val.series == reference) & (val.accuracy >= chosen.accuracy)]
    if ref.empty:
        return f"No {reference} setting is as accurate on validation: above {reference}'s front."
    rival = on_test(test, ref.sort_values("mean_nfe").iloc[0].setting)
    noise = "inside the noise" if overlaps(pick, rival) else "outside the noise"
    return (
        f"Against {reference}'s front, its cheapest setting as accurate on validation: "
        f"{describe(rival)}; {rival.mean_nfe / pick.mean_nfe:.2f}x fewer NFE, accuracy "
        f"difference {pick.accuracy - rival.accuracy:+.1f} points ({noise})."
    )


FRONT_COLUMNS = 2  # panels per row: each stays readable when the figure is page wide
FINE_TICKS = (1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 40, 50, 70, 100, 150, 200, 300, 500)


def front_figure(frame: pd.DataFrame, out: Path, name: str, title: str, footer: str):
    """Test accuracy against mean NFE, one panel per model/task (two panels a row): each
    decoder's settings as points labelled with their setting, its Pareto front as a line, the
    reference decoder's front dashed in black; plain NFE ticks on a log axis."""
    import math

    from matplotlib.colors import to_hex
    from matplotlib.lines import Line2D

    from nclb.tables.figures import (
        NICE_TICKS,
        finish,
        label_points,
        nfe_axes,
        pyplot,
        series_style,
        write,
    )

    plt = pyplot()
    test = frame[frame.split == "test"]
    parts = list(test.groupby("panel", sort=False))
    cols = min(FRONT_COLUMNS, len(parts))
    nrows = math.ceil(len(parts) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.2 * cols, 4.9 * nrows), squeeze=False)
    reference = frame.attrs.get("reference")
    labelled = []
    for ax, (panel, rows) in zip(axes.flat, parts):
        points, handles = [], []
        for i, (series, pts) in enumerate(rows.groupby("series", sort=False)):
            style = series_style(i)
            if series == reference:
                style.update(color="black", linestyle="--", linewidth=2)
            front = pts[pts.on_front.astype(bool)].sort_values("mean_nfe")
            (line,) = ax.plot(front.mean_nfe, front.accuracy, zorder=3 + i, **style)
            color = to_hex(line.get_color())
            off = pts[~pts.on_front.astype(bool)]
            ax.plot(
                off.mean_nfe,
                off.accuracy,
                linestyle="none",
                marker=style["marker"],
                markersize=style["markersize"],
                markerfacecolor="none",
                color=color,
                alpha=0.45,
                zorder=2,
            )
            handles.append(
                Line2D([], [], label=f"{series}: its front", **{**style, "color": color})
            )
            points += [
                (x, y, sw, color, style["markersize"])
                for x, y, sw in zip(pts.mean_nfe, pts.accuracy, pts.swept)
            ]
        if any(not v for v in rows.on_front.astype(bool)):
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="o",
                    markerfacecolor="none",
                    color="0.4",
                    alpha=0.45,
                    label="a setting off its decoder's front",
                )
            )
        ax.set_xscale("log")
        lo, hi = rows.mean_nfe.min(), rows.mean_nfe.max()
        ticks = [v for v in NICE_TICKS if lo * 0.9 <= v <= hi * 1.1]
        if len(ticks) < 3:  # a narrow NFE range: ticks between the round ones too
            ticks = [v for v in FINE_TICKS if lo * 0.9 <= v <= hi * 1.1] or [round(lo, 1)]
        nfe_axes(ax, ticks, panel, "test accuracy %", y_margin=0.1)
        ax.legend(handles=handles, fontsize=7, loc="lower right")
        labelled.append((ax, points))
    for ax in list(axes.flat)[len(parts) :]:
        ax.set_visible(False)
    finish(fig, title, footer)
    for ax, points in labelled:
        label_points(ax, points)  # a label with no free place is left out (the CSV has it)
    return write(fig, out, name)


@register("table", "front")
def front_table(
    grid: Grid, results: Path, execute: bool, extra: list[str], command: str, log
) -> list[Path]:
    """Run what is missing, then write the front table (md/csv/tex), its notes and figure."""
    from nclb.tables.build import build_frame
    from nclb.tables.notes import render_note
    from nclb.tables.runs import ensure_runs, plan
    from nclb.tables.shipped import read_shipped, shipped_grid, write_shipped
    from nclb.tables.write import header_lines, model_title, provenance, write_outputs

    options: dict[str, Any] = grid.options
    reference, anchor = options.get("reference", "MED"), options.get("anchor", "MED lam=0.2")
    stem = name = grid.name if grid.model_kind == "tiny" else f"{grid.name}-{grid.model_kind}"
    shipped = [] if execute else read_shipped(results, stem)
    grid = shipped_grid(grid, shipped, extra)
    planned = plan(grid.rows, extra, ())
    summaries = ensure_runs(planned, execute=execute, log=log, shipped=shipped)
    if not join().leader:
        return []  # under torchrun the other ranks decode their share; rank 0 writes
    frame = label_frame(build_frame(grid.rows, summaries, grid.paper), grid)
    frame.attrs["reference"] = reference
    notes = []
    for panel, part in frame.groupby("panel", sort=False):
        notes.append(f"{panel}. " + " ".join(compare(part, anchor, reference)))
    columns = ["panel", "split", "series", "setting", "n", "accuracy", "ci_low", "ci_high"]
    table = frame[[*columns, "mean_nfe", "on_front"]].round(2)
    display = pd.DataFrame(
        {
            "panel": table.panel,
            "split": table.split,
            "decoder": table.series,
            "setting": table.setting,
            "n": table.n,
            "accuracy % [95% CI]": [
                f"{a:.1f} [{lo:.1f}, {hi:.1f}]"
                for a, lo, hi in zip(table.accuracy, table.ci_low, table.ci_high)
            ],
            "mean NFE": [f"{v:.1f}" for v in table.mean_nfe],
            "on its front": ["yes" if v else "" for v in table.on_front],
        }
    )
    title = f"{grid.title} ({model_title(grid.model_kind)})"
    written = render_note(grid.note, grid.model_kind, frame, log, group="panel")
    note = "\n\n".join([written, *notes, *skipped_notes(grid)]).strip()
    header = header_lines(title, command, summaries, grid.paper, note)
    paths = write_outputs(results, stem, table, display, header)
    footer = f"{command}; " + "; ".join(provenance(summaries))
    paths += front_figure(frame, results, name, title, footer)
    paths.append(write_shipped(results, stem, [p.folder for p in planned], summaries))
    return paths
