"""The decoding-order picture: forward pass (rows) x region position (columns), each cell
coloured by the entropy of the token committed there at that pass (a 2-D task's region is drawn
as its grid instead, nclb.show.grid); PNG or SVG."""

from __future__ import annotations

import math
from pathlib import Path

from nclb.errors import UserError
from nclb.show.grid import draw_grids
from nclb.show.marks import (
    EARLIER,
    ENTROPY_FLOOR,
    MASKED,
    PREFILLED,
    STATE_COLOURS,
    STATE_MARKS,
    add_legend,
    entropy_cmap,
    entropy_label,
    entropy_norm,
    figure_title,
    is_dark,
    panel_title,
    source_note,
)
from nclb.show.tokens import SPECIAL
from nclb.show.trajectory import Trajectory

FORMATS = (".png", ".svg")
MAX_CELL_TEXT = (100, 90)  # (positions, passes) up to which each cell shows its token
MAX_TEXT_TICKS = 128  # more positions than this: numeric ticks instead of the token texts


def state_grid(traj: Trajectory) -> list[list[int]]:
    """[steps][positions]: MASKED before a position's commit pass (and throughout where it was
    never committed), EARLIER after it, PREFILLED where the canvas held a token from the start
    (the background under the entropy cells)."""
    rows = []
    for step in range(traj.steps):
        row = []
        for s, pre in zip(traj.step_of, traj.prefilled):
            if pre:
                row.append(PREFILLED)
            else:
                row.append(EARLIER if s is not None and s < step else MASKED)
        rows.append(row)
    return rows


def colour_data(traj: Trajectory) -> list[list[float]]:
    """The heatmap data: the entropy grid with values below ENTROPY_FLOOR raised to it."""
    return [[v if math.isnan(v) else max(v, ENTROPY_FLOOR) for v in row] for row in traj.grid()]


def tick_text(text: str) -> str:
    """A token's text for an axis tick: spaces made visible, long tokens cut."""
    shown = text.replace(" ", "␣")
    return shown if len(shown) <= 8 else shown[:7] + "…"


def draw_panel(ax, traj: Trajectory, norm, cmap) -> tuple[object, set[str]]:
    """Background states, entropy cells, block/answer/exit marks, on an axis of the
    trajectory's own passes; returns the entropy image and the mark keys drawn."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    states = np.array(state_grid(traj))
    drawn = {STATE_MARKS[int(v)] for v in np.unique(states)}
    ax.imshow(
        states,
        cmap=ListedColormap(STATE_COLOURS),
        vmin=0,
        vmax=len(STATE_COLOURS) - 1,
        aspect="auto",
        interpolation="nearest",
    )
    data = np.ma.masked_invalid(np.array(colour_data(traj), dtype=float))
    image = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    g, steps = traj.gen_length, traj.steps
    if g <= MAX_CELL_TEXT[0] and steps <= MAX_CELL_TEXT[1]:
        label_cells(ax, traj, image)
    if traj.block and traj.block < g:
        drawn.add("block")
        for x in range(traj.block, g, traj.block):
            ax.axvline(x - 0.5, color="0.55", lw=0.6, ls=":")
    if traj.answer is not None:
        drawn.add("answer")
        ax.axvline(traj.answer[0] - 0.5, color="tab:green", lw=1.4)
        ax.annotate(
            "answer block →",
            (traj.answer[0] - 0.5, -0.5),
            xytext=(2, 3),
            textcoords="offset points",
            fontsize=8,
            color="tab:green",
            annotation_clip=False,
            va="bottom",
        )
    if traj.exit_step is not None:
        drawn.add("exit")
        ax.axhline(traj.exit_step - 0.5, color="tab:red", lw=1.2, ls="--")
        low = traj.exit_step > steps - 3  # write above the line near the bottom, else below
        ax.annotate(
            f"early exit: pass {traj.exit_step} commits the answer block by argmax",
            (-0.5, traj.exit_step - 0.5),
            xytext=(2, 3 if low else -3),
            textcoords="offset points",
            fontsize=8,
            color="tab:red",
            va="bottom" if low else "top",
        )
    if g <= MAX_TEXT_TICKS:
        ax.set_xticks(range(g))
        ax.set_xticklabels(
            [tick_text(t) for t in traj.text_of],
            fontsize=7 if g <= 64 else 5,
            family="monospace",
            rotation=0 if all(len(tick_text(t)) <= 1 for t in traj.text_of) else 90,
        )
        if SPECIAL in traj.text_of:
            drawn.add("special")
        top = ax.secondary_xaxis("top")
        every = traj.block if traj.block and traj.block < g else 10
        top.set_xticks(range(0, g, every))
        top.tick_params(labelsize=7)
    ax.set_xlabel(
        "region position (tick: the token there at the end; grey column: pre-filled)\n"
        f"{source_note(traj, int(ax.figure.get_figwidth() * 20))}",
        fontsize=9,
    )
    ax.set_ylabel(f"forward pass 0-{steps - 1} of this run, top to bottom")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(steps - 0.5, -0.5)
    ax.set_title(panel_title(traj), fontsize=9)
    return image, drawn


def label_cells(ax, traj: Trajectory, image) -> None:
    """Write each committed token inside its cell (white on dark colours, black on light)."""
    for pos, (step, text) in enumerate(zip(traj.step_of, traj.text_of)):
        if step is None or not text.strip():
            continue
        rgba = image.cmap(image.norm(max(traj.entropy_of[pos] or 0.0, ENTROPY_FLOOR)))
        ax.text(
            pos,
            step,
            tick_text(text)[:2],
            ha="center",
            va="center",
            fontsize=6,
            family="monospace",
            color="white" if is_dark(rgba) else "black",
        )


def draw_strips(trajs: list[Trajectory]):
    """The figure of 1-D regions: one panel per trajectory, side by side, each on its own pass
    scale, one shared entropy colour bar."""
    import matplotlib.pyplot as plt

    widths = [min(14.0, max(5.0, 0.16 * t.gen_length + 1.5)) for t in trajs]
    height = min(11.0, max(4.0, 0.14 * max(t.steps for t in trajs) + 3.0))
    fig, axes = plt.subplots(
        1,
        len(trajs),
        figsize=(sum(widths) + 1.6, height),
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
        layout="constrained",
    )
    cmap, norm = entropy_cmap(), entropy_norm(trajs)
    image, drawn = None, set()
    for ax, traj in zip(axes[0], trajs):
        image, marks = draw_panel(ax, traj, norm, cmap)
        drawn |= marks
    bar = fig.colorbar(image, ax=list(axes[0]), fraction=0.03, pad=0.01, aspect=40)
    bar.set_label(entropy_label())
    fig.suptitle(figure_title(trajs), fontsize=11)
    add_legend(fig, drawn, trajs)
    return fig


def draw(trajs: list[Trajectory]):
    """The figure: a grid per trajectory where the task's region is 2-D (sudoku9), else one
    strip panel (passes x positions) per trajectory."""
    import matplotlib

    matplotlib.use("Agg")
    if all(t.grid_shape for t in trajs):
        return draw_grids(trajs)
    return draw_strips(trajs)


def save_figure(fig, path: Path) -> Path:
    """Save as PNG or SVG (by the suffix) and close the figure."""
    import matplotlib.pyplot as plt

    if path.suffix.lower() not in FORMATS:
        raise UserError(f"out={path} must end in .png or .svg")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror}); pick another out=") from None
    finally:
        plt.close(fig)
    return path


def write_picture(trajs: list[Trajectory], path: Path) -> Path:
    """Draw the trajectories side by side and save them to `path`."""
    return save_figure(draw(trajs), path)
