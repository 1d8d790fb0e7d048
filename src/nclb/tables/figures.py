"""Figures from a grid's rows (matplotlib, Agg backend), saved as PNG and SVG.

Readability rules every figure here follows: a series never hides another (each series has its
own marker and line style, later series hollow and larger, so a marker drawn over another
leaves it visible; on a setting axis such as γ the series are also moved sideways a little),
and point labels never overlap each other or a marker (each is put at the first free place
around its point, with a leader line when it had to move away).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from nclb.errors import UserError

NICE_TICKS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000)
GREEK = {"lam": "λ", "gamma": "γ", "k": "k", "block": "block"}
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", "-.", ":")
DODGE_DECADES = 0.05  # sideways offset between series on a log setting axis (decades)
LABEL_PAD_PX = 1.5
CLUSTER_PX = 6.0  # points of a series closer than this (in points) share one label
# Label offsets tried in order (points beyond the marker's edge): beside the point, then further
# away with a leader line.
SIGNS = ((1, 1), (1, -1), (-1, 1), (-1, -1))
OFFSETS = tuple((False, 3 * sx, 3 * sy) for sx, sy in SIGNS) + tuple(
    (True, sx * round(0.7 * d), sy * d) for d in (12, 22, 32, 44, 56, 70) for sx, sy in SIGNS
)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend, with SVG ids that do not change
    from one run to the next (the same logs give the same files)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "nclb"
    import matplotlib.pyplot as plt

    return plt


def series_style(index: int) -> dict:
    """Marker, line style and fill of the index-th series of a panel: the first filled, later
    ones hollow and larger, so that coinciding points stay visible."""
    style = {
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
        "markersize": min(5 + 2 * index, 9),
        "markeredgewidth": 1.3,
    }
    if index:
        style["markerfacecolor"] = "none"
    return style


def dodge(index: int, count: int) -> float:
    """The factor that moves series `index` of `count` sideways on a log axis (1 for one)."""
    return 10 ** ((index - (count - 1) / 2) * DODGE_DECADES)


def point_label(swept: dict) -> str:
    """'λ=0.2' for a row swept over lam=0.2."""
    return ", ".join(f"{GREEK.get(k, k)}={v}" for k, v in swept.items() if v is not None)


def cluster_label(swept: list[dict]) -> str:
    """One label for points that sit together: 'λ=0.05, 0.1, 0.2' when they are swept over
    one key, else their labels joined with '; '."""
    keys = {tuple(s) for s in swept}
    if len(keys) == 1 and len(next(iter(keys))) == 1:
        key = next(iter(keys))[0]
        values = [s[key] for s in swept if s[key] is not None]
        if all(isinstance(v, int | float) for v in values):
            values = sorted(values)
        return f"{GREEK.get(key, key)}={', '.join(str(v) for v in values)}" if values else ""
    return "; ".join(filter(None, (point_label(s) for s in swept)))


def clusters(ax, points: list[tuple], min_px: float) -> list[list[tuple]]:
    """Points of one colour (series) whose markers are closer than `min_px` to the previous
    one, in x order, grouped (a group shares one label)."""
    groups: list[list[tuple]] = []
    last: dict[str, tuple[float, float]] = {}
    for point in sorted(points, key=lambda p: (p[3], p[0])):
        px, py = ax.transData.transform((point[0], point[1]))
        prev = last.get(point[3])
        if prev is not None and abs(px - prev[0]) < min_px and abs(py - prev[1]) < min_px:
            groups[-1].append(point)
        else:
            groups.append([point])
        last[point[3]] = (px, py)
    return groups


def ci_errors(pts: pd.DataFrame) -> list:
    """Error-bar lengths below/above each accuracy (clipped at 0 against rounding)."""
    return [(pts.accuracy - pts.ci_low).clip(lower=0), (pts.ci_high - pts.accuracy).clip(lower=0)]


def panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One (title, rows) per model/task, in the grid's order."""
    out = []
    for (model, task), rows in frame.groupby(["model", "task"], sort=False):
        out.append((f"{model} / {task}", rows))
    return out


def finish(fig, title: str, footer: str) -> None:
    """Add the title and footer (provenance) and fix the layout (before labels are placed)."""
    import textwrap

    fig.suptitle(title, fontsize=12)
    width = int(fig.get_figwidth() * 17)  # characters of 7 pt text per line, roughly
    lines = textwrap.wrap(footer, width=width)
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="0.35", ha="left", va="bottom")
    bottom = min(0.3, (0.13 * len(lines) + 0.05) / fig.get_figheight())
    fig.tight_layout(rect=(0, bottom, 1, 0.95))


def write(fig, out: Path, name: str) -> list[Path]:
    """Save PNG and SVG and close the figure."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1], metadata={"Date": None})  # no timestamp: byte-identical reruns
    pyplot().close(fig)
    return paths


def save(fig, out: Path, name: str, title: str, footer: str) -> list[Path]:
    """Add the title and footer (provenance) and save PNG and SVG."""
    finish(fig, title, footer)
    return write(fig, out, name)


def marker_boxes(ax, points: list[tuple[float, float, float]]) -> list:
    """Display-space boxes of markers given as (x, y, marker size in points)."""
    from matplotlib.transforms import Bbox

    scale = ax.figure.dpi / 72
    boxes = []
    for x, y, size in points:
        px, py = ax.transData.transform((x, y))
        r = size * scale / 2 + LABEL_PAD_PX
        boxes.append(Bbox.from_extents(px - r, py - r, px + r, py + r))
    return boxes


def bar_boxes(ax) -> list:
    """Display-space boxes (1.5 px either side) of the axes' error-bar segments."""
    from matplotlib.collections import LineCollection
    from matplotlib.transforms import Bbox

    boxes = []
    for coll in ax.collections:
        if not isinstance(coll, LineCollection):
            continue
        for seg in coll.get_segments():
            (x0, y0), (x1, y1) = ax.transData.transform(seg[[0, -1]])
            boxes.append(
                Bbox.from_extents(
                    min(x0, x1) - 1.5, min(y0, y1) - 1.5, max(x0, x1) + 1.5, max(y0, y1) + 1.5
                )
            )
    return boxes


def label_points(ax, points: list[tuple[float, float, dict, str, float]]) -> list[str]:
    """Annotate points (x, y, swept settings, colour, marker size) with their labels. Points
    of one series that nearly coincide share one label ('λ=0.05, 0.1'); each label goes to the
    first place around its point where it overlaps no other label, marker or the legend and
    stays inside the axes (further away with a leader line when the near places are taken;
    crossing an error bar only when no place avoids them). Returns the labels that found no
    place (none on the grids shipped here)."""
    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    taken = marker_boxes(ax, [(x, y, size) for x, y, _, _, size in points])
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    bars = bar_boxes(ax)
    missed = []
    for group in clusters(ax, points, min_px=CLUSTER_PX * fig.dpi / 72):
        text = cluster_label([p[2] for p in group])
        x, y, _, color, size = group[len(group) // 2]
        if not text:
            continue
        tries = [(avoid, *o) for avoid in (bars, []) for o in OFFSETS]
        for avoid, far, dx, dy in tries:
            edge = size / 2
            note = ax.annotate(
                text,
                (x, y),
                xytext=(dx + edge * (1 if dx > 0 else -1), dy + edge * (1 if dy > 0 else -1)),
                textcoords="offset points",
                fontsize=7,
                color=color,
                ha="left" if dx > 0 else "right",
                va="bottom" if dy > 0 else "top",
                arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6} if far else None,
            )
            note.update_positions(renderer)  # the text alone: the leader line may cross markers
            box = Text.get_window_extent(note, renderer).padded(LABEL_PAD_PX)
            inside = area.contains(box.x0, box.y0) and area.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in taken + avoid):
                taken.append(box)
                break
            note.remove()
        else:
            missed.append(text)
    return missed


def nfe_axes(ax, ticks: list[float], panel: str, ylabel: str, y_margin: float) -> None:
    """A panel's axes with mean NFE on x (log scale, plain tick labels at `ticks`)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12, y=y_margin)
    ax.set_title(panel)
    ax.set_xlabel("mean NFE per example (forward passes, log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def draw_accuracy_vs_nfe(frame: pd.DataFrame, name: str, title: str, footer: str):
    """The accuracy-vs-NFE figure (laid out and labelled, not saved)."""
    plt = pyplot()
    parts = panels(frame[frame.series.notna()])
    if not parts:
        raise UserError(f"figure {name}: the grid has no rows with a series")

    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4.6), squeeze=False)
    labels = []
    for ax, (panel, rows) in zip(axes[0], parts):
        points = []
        for i, (series, pts) in enumerate(rows.groupby("series", sort=False)):
            pts = pts.sort_values("mean_nfe")
            style = series_style(i)
            container = ax.errorbar(
                pts.mean_nfe,
                pts.accuracy,
                yerr=ci_errors(pts),
                capsize=3,
                label=series,
                zorder=2 + i,
                **style,
            )
            color = container.lines[0].get_color()
            points += [
                (x, y, s, color, style["markersize"])
                for x, y, s in zip(pts.mean_nfe, pts.accuracy, pts.swept)
            ]
        ax.set_xscale("log")
        lo, hi = rows.mean_nfe.min(), rows.mean_nfe.max()
        ticks = [v for v in NICE_TICKS if lo * 0.9 <= v <= hi * 1.1] or [lo, hi]
        nfe_axes(ax, ticks, panel, "accuracy % (95% Wilson CI)", y_margin=0.12)
        ax.legend(fontsize=8)
        labels.append((ax, points))
    finish(fig, title, footer)
    for ax, points in labels:
        missed = label_points(ax, points)
        if missed:
            print(
                f"warning: figure {name}, {ax.get_title()}: no room for the labels "
                f"{'; '.join(missed)} (the CSV has every point)",
                file=sys.stderr,
            )
    return fig


def accuracy_vs_nfe(frame: pd.DataFrame, out: Path, name: str, title: str, footer: str):
    """Accuracy (95% CI bars) against mean NFE, one line per series (k sweep, λ sweep, ...)."""
    return write(draw_accuracy_vs_nfe(frame, name, title, footer), out, name)


def draw_nfe_saved_vs_gamma(frame: pd.DataFrame, name: str, title: str, footer: str):
    """The early-exit figure (laid out, not saved): per panel, NFE saved and accuracy against
    γ; each series' no-exit run is the point left of the γ axis break ("no exit")."""
    plt = pyplot()
    rows = frame[frame.series.notna()].copy()
    rows["gamma_value"] = [s.get("gamma") for s in rows.swept]
    parts = panels(rows)
    if not parts:
        raise UserError(f"figure {name}: the grid has no gamma-sweep rows")
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 4.0 * len(parts)), squeeze=False)
    for (ax_nfe, ax_acc), (panel, pts_all) in zip(axes, parts):
        gammas = pts_all.gamma_value.dropna()
        if gammas.empty or (gammas <= 0).any():
            raise UserError(f"figure {name}: {panel} needs gamma values > 0 besides null")
        off = gammas.min() / 10**0.8  # where "no exit" sits, left of the smallest γ
        groups = list(pts_all.groupby("series", sort=False))
        for i, (series, pts) in enumerate(groups):
            base = pts[pts.gamma_value.isna()]
            if base.empty:
                raise UserError(f"figure {name}: series {series!r} has no gamma=null row")
            base_nfe = base.mean_nfe.iloc[0]
            on = pts[pts.gamma_value.notna()].sort_values("gamma_value")
            both = pd.concat([base.iloc[:1], on])
            x = [off, *on.gamma_value]
            x = [v * dodge(i, len(groups)) for v in x]
            saved = 100 * (1 - both.mean_nfe / base_nfe)
            style = series_style(i)
            (line,) = ax_nfe.plot(x, saved, label=series, zorder=2 + i, **style)
            ax_acc.errorbar(
                x,
                both.accuracy,
                yerr=ci_errors(both),
                capsize=3,
                label=series,
                color=line.get_color(),
                zorder=2 + i,
                **style,
            )
        ticks = [off, *sorted(set(gammas))]
        for ax in (ax_nfe, ax_acc):
            ax.set_xscale("log")
            ax.set_xticks(ticks, ["no exit", *(f"{g:g}" for g in ticks[1:])])
            ax.minorticks_off()
            ax.axvline(off * 10**0.4, color="0.6", lw=0.8, ls=":")
            ax.set_xlabel("early-exit threshold γ (nats); series offset sideways", fontsize=9)
            ax.grid(alpha=0.3, which="major")
            ax.legend(fontsize=8)
        ax_nfe.set_ylabel("NFE saved vs no exit (%)")
        ax_nfe.set_title(f"{panel}: NFE saved")
        ax_acc.set_ylabel("accuracy % (95% Wilson CI)")
        ax_acc.set_title(f"{panel}: accuracy")
    finish(fig, title, footer)
    return fig


def nfe_saved_vs_gamma(frame: pd.DataFrame, out: Path, name: str, title: str, footer: str):
    """NFE saved by early exit (vs the same sampler without exit) and accuracy, against γ."""
    return write(draw_nfe_saved_vs_gamma(frame, name, title, footer), out, name)


FIGURES = {"acc_vs_nfe": accuracy_vs_nfe, "gamma": nfe_saved_vs_gamma}
