"""What the decoding-order pictures share: the entropy colours, the panel titles, and the legend,
built from the marks a figure actually drew."""

from __future__ import annotations

from nclb.show.tokens import SPECIAL
from nclb.show.trajectory import Trajectory

ENTROPY_FLOOR = 1e-6  # nats; lower entropies get the lowest colour (log scale)
MASKED, EARLIER, PREFILLED = 0, 1, 2
STATE_COLOURS = ("#ffffff", "#e3e3e3", "#b3b3b3")
# mark key -> legend text; a figure's legend lists the keys its panels drew, in this order
MARKS = {
    "masked": "still masked",
    "earlier": "committed at an earlier pass",
    "prefilled": "pre-filled (template / givens)",
    "block": "block boundary",
    "answer": "answer block start",
    "exit": "early exit",
    "wrong": "differs from gold",
    "special": "special token",
}
STATE_MARKS = {MASKED: "masked", EARLIER: "earlier", PREFILLED: "prefilled"}


def entropy_norm(trajs: list[Trajectory]):
    """One log-scale colour norm over every panel (so colours compare across runs)."""
    from matplotlib.colors import LogNorm

    values = [max(e, ENTROPY_FLOOR) for t in trajs for e in t.entropy_of if e is not None]
    low = min(values, default=ENTROPY_FLOOR)
    high = max(values, default=1.0)
    return LogNorm(vmin=low, vmax=max(high, low * 10))


def entropy_cmap():
    """Plasma without its palest yellow (so white cell text stays readable on it)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    return ListedColormap(plt.get_cmap("plasma")(np.linspace(0, 0.88, 256)))


def entropy_label() -> str:
    """The entropy colour bar's label."""
    return f"entropy at commit (nats, log; <{ENTROPY_FLOOR:g} = bottom)"


def cut(text: str, width: int) -> str:
    """`text`, cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def panel_title(traj: Trajectory, values: bool = True) -> str:
    """Run label and the example's outcome (with the prediction and gold when `values`)."""
    outcome = "correct" if traj.correct else "wrong"
    pred, gold = (cut(repr(v), 40) for v in (traj.prediction, traj.gold))
    shown = f" (prediction {pred}, gold {gold})" if values else ""
    return f"{traj.label}\nexample {traj.example_id}: NFE {traj.nfe}, {outcome}{shown}"


def source_note(traj: Trajectory, width: int) -> str:
    """The run folder and the trajectory's notes, cut to `width` characters."""
    return cut("; ".join([f"run folder {traj.run_dir}", *traj.notes]), width)


def figure_title(trajs: list[Trajectory]) -> str:
    """Model, task and the (shared) prompt."""
    first = trajs[0]
    prompt = cut(" ".join(first.prompt.split()), 140)
    return f"Decoding order: {first.model} / {first.task}, prompt: {prompt}"


def is_dark(rgba) -> bool:
    """Whether black text would be hard to read on this colour."""
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.55


def special_label(trajs: list[Trajectory]) -> str:
    """The legend text of the SPECIAL glyph: what it stands for in these trajectories."""
    names = list(dict.fromkeys(n for t in trajs for n in t.specials))
    return f"{MARKS['special']}: {', '.join(names) or 'eos / pad'}"


def legend_handles(drawn: set[str], trajs: list[Trajectory]) -> list:
    """A patch or line for each mark key in `drawn`, in MARKS order."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    make = {
        "masked": lambda: Patch(facecolor=STATE_COLOURS[MASKED], edgecolor="0.6"),
        "earlier": lambda: Patch(facecolor=STATE_COLOURS[EARLIER]),
        "prefilled": lambda: Patch(facecolor=STATE_COLOURS[PREFILLED]),
        "block": lambda: Line2D([], [], color="0.55", lw=0.8, ls=":"),
        "answer": lambda: Line2D([], [], color="tab:green", lw=1.4),
        "exit": lambda: Line2D([], [], color="tab:red", lw=1.2, ls="--"),
        "wrong": lambda: Patch(facecolor="none", edgecolor="tab:red", lw=1.6),
        "special": lambda: Line2D([], [], ls="none", marker=f"${SPECIAL}$", color="black", ms=8),
    }
    handles = []
    for key, text in MARKS.items():
        if key in drawn:
            handle = make[key]()
            handle.set_label(special_label(trajs) if key == "special" else text)
            handles.append(handle)
    return handles


def add_legend(fig, drawn: set[str], trajs: list[Trajectory]) -> None:
    """The figure's legend below its panels: only the marks drawn (none: no legend)."""
    handles = legend_handles(drawn, trajs)
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=len(handles),
            fontsize=8,
            frameon=False,
        )
