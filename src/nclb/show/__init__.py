"""`nclb show RUN_DIR [id=...] [--compare RUN_DIR2]`: one example's decoding order as a
picture (PNG/SVG heatmap) and as coloured terminal text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nclb.errors import UserError
from nclb.schema import Flag, OneOf, from_words, setting
from nclb.show.plot import write_picture
from nclb.show.text import COLOUR_MODES, render_text, use_colour
from nclb.show.trajectory import Trajectory, load_trajectory

USAGE = """usage: nclb show RUN_DIR [id=ID] [--compare RUN_DIR2] [out=FILE.png|.svg] [text=true|false]
                 [color=auto|always|never]

Draws one example's decoding order from a run folder whose records were logged with
log_trajectory=true (nclb run ... log_trajectory=true): rows are the example's forward passes,
columns the positions of the generation region; each position is coloured, at the pass that
committed it, by its entropy then; the early-exit pass and the answer block are marked, and the
legend lists only the marks drawn (∅ = a special token, named there: eos, pad). A task whose
region is a grid (sudoku9) is drawn as that grid, twice: coloured by the pass that committed
each cell, and by its entropy then. Also prints the same as coloured text, one line per pass
(text=false: picture only).

  id=ID            the example (default: the first traced record in the folder)
  --compare DIR2   a second run folder (e.g. MED beside k=1), drawn beside it on the same
                   example and entropy colour scale, each run on its own pass scale
  out=FILE         where to write the picture (.png or .svg); default RUN_DIR/show-<id>.png
  color=auto       colour codes in the text: auto (a terminal, no NO_COLOR), always, never

examples:
  nclb run task=arith limit=5 log_trajectory=true
  nclb show outputs/runs/tiny/arith/ktoken-<hash> id=arith-1234-0
  nclb show outputs/runs/tiny/arith/ktoken-<hash> --compare outputs/runs/tiny/arith/med-<hash>"""


@dataclass
class ShowOptions:
    """The key=value options of `nclb show`."""

    id: str = ""
    out: str = ""
    text: bool = setting(True, Flag())
    color: str = setting("auto", OneOf(options=COLOUR_MODES))


def parse_args(argv: list[str]) -> tuple[list[Path], ShowOptions]:
    """(run folders, the first then an optional --compare one; key=value options)."""
    folders: list[Path] = []
    words: dict[str, str] = {}
    args = list(argv)
    while args:
        item = args.pop(0)
        if item == "--compare" or item.startswith("--compare="):
            value = item.partition("=")[2] or (args.pop(0) if args else "")
            if not value:
                raise UserError("--compare needs a second run folder: --compare RUN_DIR2")
            if len(folders) != 1:
                raise UserError("give RUN_DIR first, then --compare RUN_DIR2")
            folders.append(Path(value))
        elif "=" in item and not Path(item).exists():
            key, _, value = item.partition("=")
            words[key] = value
        elif item.startswith("-"):
            raise UserError(f"unknown option {item}; see nclb show --help")
        elif folders:
            raise UserError(f"one RUN_DIR only (got {folders[0]} and {item}); use --compare")
        else:
            folders.append(Path(item))
    options = from_words(ShowOptions, words, "nclb show")
    if not folders:
        raise UserError("nclb show needs a run folder: nclb show RUN_DIR [id=...]")
    return folders, options


def default_out(trajs: list[Trajectory]) -> Path:
    """RUN_DIR/show-<id>.png, or show-<id>-vs-<other folder>.png for a comparison."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", trajs[0].example_id)
    name = f"show-{safe}" + "".join(f"-vs-{t.run_dir.name}" for t in trajs[1:])
    return trajs[0].run_dir / f"{name}.png"


def show(argv: list[str]) -> Path:
    """Run `nclb show`: print the text, write the picture; returns the picture's path."""
    folders, options = parse_args(argv)
    first = load_trajectory(folders[0], options.id or None)
    trajs = [first] + [load_trajectory(f, first.example_id) for f in folders[1:]]
    if options.text:
        colour = use_colour(options.color)
        print("\n\n".join(render_text(t, colour) for t in trajs))
    path = write_picture(trajs, Path(options.out) if options.out else default_out(trajs))
    print(f"wrote {path}")
    return path


def show_command(argv: list[str]) -> None:
    """Entry of `nclb show` (for nclb.cli.COMMANDS)."""
    if not argv or {"-h", "--help", "help"} & set(argv):
        print(USAGE)
        return
    show(argv)
