"""The decoding-order picture: forward pass (rows) x region position (columns), each cell
coloured by the entropy of the token committed there at that pass; PNG or SVG."""

from __future__ import annotations

import math
from pathlib import Path

from nclb.errors import UserError
from nclb.show.trajectory import Trajectory

ENTROPY_FLOOR = 1e-6  # nats; lower entropies get the lowest colour (log scale)
FORMATS = (".png", ".svg")
MASKED, EARLIER, PREFILLED = 0, 1, 2
STATE_COLOURS = ("#ffffff", "#e3e3e3", "#b3b3b3")
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


def entropy_norm(trajs: list[Trajectory]):
    """One log-scale colour norm over every panel (so colours compare across runs)."""
    from matplotlib.colors import LogNorm

    values = [max(e, ENTROPY_FLOOR) for t in trajs for e in t.entropy_of if e is not None]
    low = min(values, default=ENTROPY_FLOOR)
    high = max(values, default=1.0)
    return LogNorm(vmin=low, vmax=max(high, low * 10))


def tick_text(text: str) -> str:
    """A token's text for an axis tick: spaces made visible, long tokens cut."""
    shown = text.replace(" ", "␣")
    return shown if len(shown) <= 8 else shown[:7] + "…"


def cut(text: str, width: int) -> str:
    """`text`, cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def panel_title(traj: Trajectory) -> str:
    """Run label and the example's outcome."""
    outcome = "correct" if traj.correct else "wrong"
    pred, gold = (cut(repr(v), 40) for v in (traj.prediction, traj.gold))
    return f"{traj.label}\nexample {traj.example_id}: NFE {traj.nfe}, {outcome} (prediction {pred}, gold {gold})"


def draw_panel(ax, traj: Trajectory, norm, cmap, rows: int) -> object:
    """Background states, entropy cells, block/answer/exit marks, on an axis of `rows` passes
    (the longest panel's); returns the entropy image."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    states = np.array(state_grid(traj))
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
        for x in range(traj.block, g, traj.block):
            ax.axvline(x - 0.5, color="0.55", lw=0.6, ls=":")
    if traj.answer is not None:
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
        ax.axhline(traj.exit_step - 0.5, color="tab:red", lw=1.2, ls="--")
        low = traj.exit_step > rows - 3  # write above the line near the bottom, else below
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
        top = ax.secondary_xaxis("top")
        every = traj.block if traj.block and traj.block < g else 10
        top.set_xticks(range(0, g, every))
        top.tick_params(labelsize=7)
    source = "; ".join([f"run folder {traj.run_dir}", *traj.notes])
    ax.set_xlabel(
        "region position (tick: the token there at the end; grey column: pre-filled)\n"
        f"{cut(source, int(ax.figure.get_figwidth() * 20))}",
        fontsize=9,
    )
    ax.set_ylabel("forward pass (NFE so far), top to bottom")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(rows - 0.5, -0.5)
    if steps < rows:
        ax.text(
            (g - 1) / 2,
            steps,
            f"done after {steps} forward passes",
            ha="center",
            va="top",
            fontsize=9,
            color="0.3",
        )
    ax.set_title(panel_title(traj), fontsize=9)
    return image


def label_cells(ax, traj: Trajectory, image) -> None:
    """Write each committed token inside its cell (white on dark colours, black on light)."""
    for pos, (step, text) in enumerate(zip(traj.step_of, traj.text_of)):
        if step is None or not text.strip():
            continue
        r, g, b, _ = image.cmap(image.norm(max(traj.entropy_of[pos] or 0.0, ENTROPY_FLOOR)))
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.55
        ax.text(
            pos,
            step,
            tick_text(text)[:2],
            ha="center",
            va="center",
            fontsize=6,
            family="monospace",
            color="white" if dark else "black",
        )


def legend_handles() -> list:
    """Patches and lines explaining the background colours and the marks."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=STATE_COLOURS[MASKED], edgecolor="0.6", label="still masked"),
        Patch(facecolor=STATE_COLOURS[EARLIER], label="committed at an earlier pass"),
        Patch(facecolor=STATE_COLOURS[PREFILLED], label="pre-filled (template / givens)"),
        Line2D([], [], color="0.55", lw=0.8, ls=":", label="block boundary"),
        Line2D([], [], color="tab:green", lw=1.4, label="answer block start"),
        Line2D([], [], color="tab:red", lw=1.2, ls="--", label="early exit"),
    ]


def draw(trajs: list[Trajectory]):
    """The figure: one panel per trajectory, side by side, one shared entropy colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

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
    cmap = ListedColormap(plt.get_cmap("plasma")(np.linspace(0, 0.88, 256)))
    norm = entropy_norm(trajs)
    image = None
    rows = max(t.steps for t in trajs)  # one pass scale: fewer passes look shorter
    for ax, traj in zip(axes[0], trajs):
        image = draw_panel(ax, traj, norm, cmap, rows)
    bar = fig.colorbar(image, ax=list(axes[0]), fraction=0.03, pad=0.01, aspect=40)
    bar.set_label(f"entropy at commit (nats, log; <{ENTROPY_FLOOR:g} = bottom)")
    first = trajs[0]
    prompt = cut(" ".join(first.prompt.split()), 140)
    fig.suptitle(f"Decoding order: {first.model} / {first.task}, prompt: {prompt}", fontsize=11)
    fig.legend(
        handles=legend_handles(), loc="outside lower center", ncol=6, fontsize=8, frameon=False
    )
    return fig


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
