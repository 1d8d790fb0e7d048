"""Figures from a grid's rows (matplotlib, Agg backend), saved as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nclb.errors import UserError

NICE_TICKS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000)
GREEK = {"lam": "λ", "gamma": "γ", "k": "k", "block": "block"}


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def point_label(swept: dict) -> str:
    """'λ=0.2' for a row swept over lam=0.2."""
    return ", ".join(f"{GREEK.get(k, k)}={v}" for k, v in swept.items() if v is not None)


def ci_errors(pts: pd.DataFrame) -> list:
    """Error-bar lengths below/above each accuracy (clipped at 0 against rounding)."""
    return [(pts.accuracy - pts.ci_low).clip(lower=0), (pts.ci_high - pts.accuracy).clip(lower=0)]


def panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One (title, rows) per model/task, in the grid's order."""
    out = []
    for (model, task), rows in frame.groupby(["model", "task"], sort=False):
        out.append((f"{model} / {task}", rows))
    return out


def save(fig, out: Path, name: str, title: str, footer: str) -> list[Path]:
    """Add the title and footer (provenance) and save PNG and SVG."""
    import textwrap

    fig.suptitle(title, fontsize=12)
    width = int(fig.get_figwidth() * 17)  # characters of 7 pt text per line, roughly
    lines = textwrap.wrap(footer, width=width)
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="0.35", ha="left", va="bottom")
    bottom = min(0.3, (0.13 * len(lines) + 0.05) / fig.get_figheight())
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    pyplot().close(fig)
    return paths


def label_points(ax, points: list[tuple[float, float, str, str]], min_px: float = 14.0) -> None:
    """Annotate points with their labels, skipping one that would overlap a label already
    placed (closer than `min_px` pixels); the CSV/Markdown table has every value."""
    ax.figure.canvas.draw()
    placed: list[tuple[float, float]] = []
    for x, y, text, color in points:
        px, py = ax.transData.transform((x, y))
        if not text or any(abs(px - a) < 3 * min_px and abs(py - b) < min_px for a, b in placed):
            continue
        placed.append((px, py))
        ax.annotate(
            text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color
        )


def accuracy_vs_nfe(frame: pd.DataFrame, out: Path, name: str, title: str, footer: str):
    """Accuracy (95% CI bars) against mean NFE, one line per series (k sweep, λ sweep, ...)."""
    plt = pyplot()
    parts = panels(frame[frame.series.notna()])
    if not parts:
        raise UserError(f"figure {name}: the grid has no rows with a series")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4.6), squeeze=False)
    for ax, (panel, rows) in zip(axes[0], parts):
        points = []
        for series, pts in rows.groupby("series", sort=False):
            pts = pts.sort_values("mean_nfe")
            err = ci_errors(pts)
            (line, *_) = ax.errorbar(
                pts.mean_nfe, pts.accuracy, yerr=err, marker="o", capsize=3, label=series
            )
            points += [
                (x, y, point_label(s), line.get_color())
                for x, y, s in zip(pts.mean_nfe, pts.accuracy, pts.swept)
            ]
        ax.set_xscale("log")
        lo, hi = rows.mean_nfe.min(), rows.mean_nfe.max()
        ticks = [v for v in NICE_TICKS if lo * 0.9 <= v <= hi * 1.1] or [lo, hi]
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.08)
        label_points(ax, points)
        ax.set_title(panel)
        ax.set_xlabel("mean NFE per example (forward passes, log scale)")
        ax.set_ylabel("accuracy % (95% Wilson CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, out, name, title, footer)


def nfe_saved_vs_gamma(frame: pd.DataFrame, out: Path, name: str, title: str, footer: str):
    """NFE saved by early exit (vs the same sampler without exit) and accuracy, against γ."""
    plt = pyplot()
    rows = frame[frame.series.notna()].copy()
    rows["gamma_value"] = [s.get("gamma") for s in rows.swept]
    parts = panels(rows)
    if not parts:
        raise UserError(f"figure {name}: the grid has no gamma-sweep rows")
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 4.0 * len(parts)), squeeze=False)
    for (ax_nfe, ax_acc), (panel, pts_all) in zip(axes, parts):
        for series, pts in pts_all.groupby("series", sort=False):
            base = pts[pts.gamma_value.isna()]
            if base.empty:
                raise UserError(f"figure {name}: series {series!r} has no gamma=null row")
            base_nfe, base_acc = base.mean_nfe.iloc[0], base.accuracy.iloc[0]
            on = pts[pts.gamma_value.notna()].sort_values("gamma_value")
            saved = 100 * (1 - on.mean_nfe / base_nfe)
            (line,) = ax_nfe.plot(on.gamma_value, saved, marker="o", label=series)
            err = ci_errors(on)
            ax_acc.errorbar(
                on.gamma_value,
                on.accuracy,
                yerr=err,
                marker="o",
                capsize=3,
                label=series,
                color=line.get_color(),
            )
            ax_acc.axhline(base_acc, ls="--", lw=1, color=line.get_color(), alpha=0.6)
        for ax in (ax_nfe, ax_acc):
            ax.set_xscale("log")
            ax.set_xlabel("early-exit threshold γ (answer-block entropy, nats)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
        ax_nfe.set_ylabel("NFE saved vs no exit (%)")
        ax_nfe.set_title(f"{panel}: NFE saved")
        ax_acc.set_ylabel("accuracy % (95% CI); dashed: no exit")
        ax_acc.set_title(f"{panel}: accuracy")
    return save(fig, out, name, title, footer)


FIGURES = {"acc_vs_nfe": accuracy_vs_nfe, "gamma": nfe_saved_vs_gamma}
