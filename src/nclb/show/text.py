"""The decoding order as coloured terminal text: one line per forward pass, showing the region
as it stands after that pass, the tokens committed at it coloured by their entropy."""

from __future__ import annotations

import os
import sys

from nclb.show.trajectory import Trajectory

MASK = "·"
RESET = "\033[0m"
DIM = "\033[2m"
# (upper bound in nats, ANSI colour) for the tokens committed at a pass.
ENTROPY_COLOURS = (
    (0.01, "\033[1;32m"),  # bold green: near certain
    (0.1, "\033[1;36m"),  # bold cyan
    (0.5, "\033[1;33m"),  # bold yellow
    (float("inf"), "\033[1;31m"),  # bold red: uncertain
)
COLOUR_MODES = ("auto", "always", "never")


def use_colour(mode: str, stream=None) -> bool:
    """Colour on for `always`, off for `never`; `auto`: a terminal and no NO_COLOR variable."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    stream = stream or sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR")


def entropy_colour(entropy: float | None) -> str:
    """The ANSI colour of a token committed with `entropy`."""
    value = 0.0 if entropy is None else entropy
    return next(code for bound, code in ENTROPY_COLOURS if value < bound)


def legend(colour: bool) -> str:
    """What the colours and marks mean."""
    if not colour:
        return (
            f"each line: the region after that forward pass; [x] = committed at that pass "
            f"(entropy in the list at the right), {MASK} = still masked"
        )
    bins, low = [], 0.0
    for bound, code in ENTROPY_COLOURS:
        text = f"< {bound:g}" if bound != float("inf") else f">= {low:g}"
        bins.append(f"{code}{text}{RESET}")
        low = bound
    return (
        "each line: the region after that forward pass; tokens committed at that pass coloured "
        f"by entropy (nats): {', '.join(bins)}; {DIM}dim{RESET} = committed earlier or "
        f"pre-filled; {MASK} = still masked"
    )


def header(traj: Trajectory) -> list[str]:
    """The run, the example and its outcome."""
    outcome = "correct" if traj.correct else "wrong"
    lines = [
        f"{traj.model} / {traj.task} | {traj.label} | {traj.run_dir}",
        f"example {traj.example_id}: NFE {traj.nfe}, {outcome} "
        f"(prediction {traj.prediction!r}, gold {traj.gold!r})",
        f"prompt: {traj.prompt}",
    ]
    if traj.answer is not None:
        lines.append(f"answer block: positions {traj.answer[0]}-{traj.answer[1] - 1}")
    return lines + [f"note: {n}" for n in traj.notes]


def styled(runs: list[tuple[str, str]], colour: bool) -> str:
    """Join (style, text) pieces, one escape code per run of equal style."""
    out, last = [], None
    for style, text in runs:
        if colour and style != last:
            out.append((RESET if last else "") + style)
            last = style
        out.append(text)
    if colour and last:
        out.append(RESET)
    return "".join(out)


def step_line(traj: Trajectory, step: int, colour: bool) -> str:
    """The region after forward pass `step`, its new tokens marked, and their entropies."""
    runs, new = [], []
    for pos, (s, text, pre) in enumerate(zip(traj.step_of, traj.text_of, traj.prefilled)):
        if (s is None and not pre) or (s is not None and s > step):
            runs.append(("", MASK))
        elif s == step:
            ent = traj.entropy_of[pos]
            new.append(f"{pos}:{text!r} {0.0 if ent is None else ent:.2g}")
            runs.append((entropy_colour(ent), text) if colour else ("", f"[{text}]"))
        else:
            runs.append((DIM, text))
    mark = "  <- early exit" if step == traj.exit_step else ""
    return f"{step:4d} | {styled(runs, colour)} | {', '.join(new)}{mark}"


def render_text(traj: Trajectory, colour: bool) -> str:
    """The whole picture as text."""
    lines = header(traj) + [legend(colour), " pass | region | committed position:token entropy"]
    lines += [step_line(traj, step, colour) for step in range(traj.steps)]
    return "\n".join(lines)
