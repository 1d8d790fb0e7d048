"""The decoding-order picture of a task whose region is a 2-D grid (sudoku9): per run, the grid
coloured by the pass that committed each cell (its number written in the corner) beside the
same grid coloured by each cell's entropy at commit, every cell showing its final token."""

from __future__ import annotations

import math

from nclb.show.marks import (
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

ORDER_CMAP = "viridis"  # pass that committed a cell: dark = early, yellow = late


def cell_states(traj: Trajectory) -> list[list[int | None]]:
    """[rows][columns]: PREFILLED for a given, MASKED for a cell never committed, None for a
    committed one (coloured by its pass or entropy)."""
    rows, cols = traj.grid_shape
    out: list[list[int | None]] = [[None] * cols for _ in range(rows)]
    for p, (step, pre) in enumerate(zip(traj.step_of, traj.prefilled)):
        if step is None:
            out[p // cols][p % cols] = PREFILLED if pre else MASKED
    return out


def cell_values(traj: Trajectory, values: list[float | None]) -> list[list[float]]:
    """[rows][columns] of `values` at committed cells, NaN elsewhere."""
    rows, cols = traj.grid_shape
    out = [[math.nan] * cols for _ in range(rows)]
    for p, (step, v) in enumerate(zip(traj.step_of, values)):
        if step is not None and v is not None:
            out[p // cols][p % cols] = float(v)
    return out


def wrong_cells(traj: Trajectory) -> list[int]:
    """Positions whose one-character token differs from the gold grid's (a gold string with
    one character per cell); [] when the gold is not such a string."""
    gold = traj.gold
    if not isinstance(gold, str) or len(gold) != traj.gen_length:
        return []
    return [
        p
        for p, text in enumerate(traj.text_of)
        if len(text) == 1 and text != SPECIAL and text != gold[p]
    ]


def draw_cells(
    ax, traj: Trajectory, values: list[float | None], cmap, norm
) -> tuple[object, set[str]]:
    """One grid on `ax`: givens and masked cells in their state colours, committed cells
    coloured by `values`, box lines, the final token in every cell; returns the image and the
    mark keys drawn."""
    import numpy as np
    from matplotlib.colors import ListedColormap, to_rgba
    from matplotlib.patches import Rectangle

    rows, cols = traj.grid_shape
    states = np.array(cell_states(traj), dtype=float)
    drawn = {STATE_MARKS[int(v)] for v in np.unique(states[~np.isnan(states)])}
    ax.imshow(
        np.ma.masked_invalid(states),
        cmap=ListedColormap(STATE_COLOURS),
        vmin=0,
        vmax=len(STATE_COLOURS) - 1,
        interpolation="nearest",
    )
    data = np.ma.masked_invalid(np.array(cell_values(traj, values)))
    image = ax.imshow(data, cmap=cmap, norm=norm, interpolation="nearest")
    for p, (text, step) in enumerate(zip(traj.text_of, traj.step_of)):
        if not text:
            continue
        r, c = divmod(p, cols)
        on = to_rgba(STATE_COLOURS[PREFILLED if step is None else MASKED])
        if data.mask[r, c] == 0:
            on = cmap(norm(data[r, c]))
        ax.text(
            c,
            r,
            text[:2],
            ha="center",
            va="center",
            fontsize=11,
            fontweight="normal" if step is not None else "bold",
            color="white" if is_dark(on) else "black",
        )
        if text == SPECIAL:
            drawn.add("special")
    for p in wrong_cells(traj):
        r, c = divmod(p, cols)
        ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, ec="tab:red", lw=2))
        drawn.add("wrong")
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="0.75", lw=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    box_rows, box_cols = traj.grid_box or (rows, cols)
    for x in range(0, cols + 1, box_cols):
        ax.axvline(x - 0.5, color="black", lw=2)
    for y in range(0, rows + 1, box_rows):
        ax.axhline(y - 0.5, color="black", lw=2)
    return image, drawn


def write_pass_numbers(ax, traj: Trajectory) -> None:
    """The committing pass of each committed cell, small in its top-left corner."""
    cols = traj.grid_shape[1]
    for p, step in enumerate(traj.step_of):
        if step is not None:
            r, c = divmod(p, cols)
            ax.text(
                c - 0.42,
                r - 0.42,
                str(step),
                ha="left",
                va="top",
                fontsize=5.5,
                color="0.15",
                bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.7},
            )


def draw_run(sub, traj: Trajectory, norm, cmap) -> set[str]:
    """One run's pair of grids (commit order, entropy) in subfigure `sub`; the mark keys drawn."""
    from matplotlib.colors import Normalize

    order_ax, entropy_ax = sub.subplots(1, 2)
    order_norm = Normalize(vmin=0, vmax=max(traj.steps - 1, 1))
    steps = [float(s) if s is not None else None for s in traj.step_of]
    order, drawn = draw_cells(order_ax, traj, steps, order_cmap(), order_norm)
    write_pass_numbers(order_ax, traj)
    order_ax.set_title("colour: the forward pass that committed the cell", fontsize=9)
    bar = sub.colorbar(order, ax=order_ax, fraction=0.046, pad=0.02)
    bar.set_label(f"forward pass (0-{traj.steps - 1}; number in the cell's corner)", fontsize=8)
    floors = [None if e is None else max(e, ENTROPY_FLOOR) for e in traj.entropy_of]
    entropy, marks = draw_cells(entropy_ax, traj, floors, cmap, norm)
    entropy_ax.set_title("colour: the cell's entropy when it was committed", fontsize=9)
    bar = sub.colorbar(entropy, ax=entropy_ax, fraction=0.046, pad=0.02)
    bar.set_label(entropy_label(), fontsize=8)
    exit_note = "" if traj.exit_step is None else f"; early exit at pass {traj.exit_step}"
    sub.suptitle(panel_title(traj, values=False) + exit_note, fontsize=9)
    sub.supxlabel(source_note(traj, 140), fontsize=7)
    return drawn | marks


def order_cmap():
    """The commit-order colour map."""
    import matplotlib.pyplot as plt

    return plt.get_cmap(ORDER_CMAP)


def draw_grids(trajs: list[Trajectory]):
    """The figure: one row per trajectory (its order grid and its entropy grid), each run on its
    own pass scale, one entropy scale for all; the legend lists the marks drawn."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11.5, 5.6 * len(trajs) + 0.9), layout="constrained")
    subs = fig.subfigures(len(trajs), 1, squeeze=False)[:, 0]
    cmap, norm = entropy_cmap(), entropy_norm(trajs)
    drawn: set[str] = set()
    for sub, traj in zip(subs, trajs):
        drawn |= draw_run(sub, traj, norm, cmap)
    fig.suptitle(figure_title(trajs), fontsize=11)
    add_legend(fig, drawn, trajs)
    return fig
