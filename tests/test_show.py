"""`nclb show`: the decoding-order picture and text of one example, checked against the records
of real tiny-arith runs (k=1, and MED with early exit) and of hand-written records."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from nclb.config.compose import compose
from nclb.errors import UserError
from nclb.show import parse_args, show
from nclb.show.plot import (
    EARLIER,
    ENTROPY_FLOOR,
    MASKED,
    PREFILLED,
    draw,
    save_figure,
    state_grid,
)
from nclb.show.text import MASK, render_text
from nclb.show.tokens import SPECIAL
from nclb.show.trajectory import load_trajectory, task_grid

ANSI = re.compile(r"\033\[[0-9;]*m")


@pytest.fixture(scope="module")
def arith_runs(tmp_path_factory, one_torch_thread):
    """Two traced runs of the shipped tiny arith model on the same 2 examples: k=1 (no exit)
    and MED lam=0.2 with early exit."""
    from nclb.runs.runner import run

    out = tmp_path_factory.mktemp("runs")
    base = ["model=tiny", "task=arith", "limit=2", "log_trajectory=true", f"out_dir={out}"]
    k1 = run(compose("config", [*base, "decoder=ktoken", "k=1"]))
    med = run(compose("config", [*base, "decoder=med", "lam=0.2", "gamma=0.001"]))
    return k1["run_dir"], med["run_dir"]


def records(run_dir) -> list[dict]:
    with open(f"{run_dir}/records.jsonl") as f:
        return [json.loads(line) for line in f]


def test_picture_cells_are_the_records_steps_by_positions(arith_runs, tmp_path):
    run_dir = arith_runs[0]
    record = records(run_dir)[1]
    traj = load_trajectory(run_dir, record["id"])
    assert (traj.steps, traj.gen_length) == (record["nfe"], len(record["canvas"]["region"]))
    fig = draw([traj])
    states, entropy = fig.axes[0].images
    data = entropy.get_array()
    assert data.shape == (traj.steps, traj.gen_length)
    expected = {}
    for i, step in enumerate(record["trajectory"]):
        for pos, ent in zip(step["positions"], step["entropies"]):
            expected[(i, pos)] = max(ent, ENTROPY_FLOOR)
    coloured = {(int(r), int(c)) for r, c in zip(*(~data.mask).nonzero())}
    assert coloured == set(expected)  # exactly one coloured cell per committed token
    for (r, c), value in expected.items():
        assert math.isclose(float(data[r, c]), value, rel_tol=1e-9)
    # Background: masked until committed, grey after; the delimiter is pre-filled throughout.
    region, mask_id = record["canvas"]["region"], 1
    st = states.get_array()
    for r, c in expected:
        assert st[r, c] == MASKED and (r + 1 == traj.steps or st[r + 1, c] == EARLIER)
    for c, tok in enumerate(region):
        if tok != mask_id:
            assert all(st[:, c] == PREFILLED)
    # The shipped character tokenizer labels every position: the region reads as the output.
    assert "".join(traj.text_of).replace("∅", "") == record["output"]
    path = save_figure(fig, tmp_path / "k1.png")
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 600


def test_early_exit_row_and_positions_left_masked(arith_runs):
    run_dir = arith_runs[1]
    record = next(r for r in records(run_dir) if r["exit_step"] is not None)
    traj = load_trajectory(run_dir, record["id"])
    exit_row = next(i for i, s in enumerate(record["trajectory"]) if s["early_exit"])
    assert traj.exit_step == exit_row
    start, end = record["canvas"]["answer"]
    assert traj.answer == (start, end)
    committed_at_exit = set(record["trajectory"][exit_row]["positions"])
    assert committed_at_exit and committed_at_exit <= set(range(start, end))
    # Reasoning positions the exit left masked are white to the end, not "pre-filled".
    left = [p for p, s in enumerate(traj.step_of) if s is None and not traj.prefilled[p]]
    rows = state_grid(traj)
    assert all(rows[-1][p] == MASKED for p in left)
    assert all(traj.prefilled[p] == (record["canvas"]["region"][p] != 1) for p in left)


def test_text_has_one_line_per_pass_marking_what_it_committed(arith_runs):
    run_dir = arith_runs[0]
    record = records(run_dir)[0]
    traj = load_trajectory(run_dir, record["id"])
    lines = render_text(traj, colour=False).splitlines()
    passes = [line for line in lines if re.match(r"^\s*\d+ \| ", line)]
    assert len(passes) == record["nfe"]
    for i, (line, step) in enumerate(zip(passes, record["trajectory"])):
        region = line.split(" | ")[1]
        marked = [m.start() for m in re.finditer(r"\[", region)]
        # Each committed token is shown as [x]: strip the brackets to get region offsets.
        offsets = [m - 2 * k for k, m in enumerate(marked)]
        assert offsets == sorted(step["positions"]), f"pass {i}"
        plain = region.replace("[", "").replace("]", "")
        assert len(plain) == traj.gen_length
        later = [p for j, s in enumerate(record["trajectory"][i + 1 :]) for p in s["positions"]]
        assert all(plain[p] == MASK for p in later)
    coloured = render_text(traj, colour=True)
    assert (
        ANSI.search(coloured) and "[" not in ANSI.sub("", coloured.splitlines()[-1]).split(" | ")[1]
    )


def test_compare_draws_each_run_on_its_own_pass_scale(arith_runs, tmp_path, capsys):
    k1, med = arith_runs
    first = records(k1)[0]["id"]
    path = show([k1, "--compare", med, f"id={first}", "text=false", f"out={tmp_path / 'c.svg'}"])
    assert path.is_file() and path.read_text().lstrip().startswith("<?xml")
    trajs = [load_trajectory(k1, first), load_trajectory(med, first)]
    assert trajs[0].steps != trajs[1].steps
    fig = draw(trajs)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2
    for ax, traj in zip(panels, trajs):
        assert ax.images[1].get_array().shape == (traj.steps, traj.gen_length)
        assert ax.get_ylim() == (traj.steps - 0.5, -0.5)  # MED's few passes fill its panel
    assert panels[0].get_ylim() != panels[1].get_ylim()
    assert "wrote" in capsys.readouterr().out


def legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def drawn_marks(fig) -> set[str]:
    """The legend texts the strip figure's artists call for, read off the drawn artists."""
    names = {MASKED: "still masked", EARLIER: "committed at an earlier pass"}
    names[PREFILLED] = "pre-filled (template / givens)"
    marks = set()
    for ax in (ax for ax in fig.axes if ax.images):
        marks |= {names[int(v)] for v in set(ax.images[0].get_array().ravel())}
        for line in ax.lines:
            colour, style = line.get_color(), line.get_linestyle()
            if colour == "tab:green":
                marks.add("answer block start")
            elif colour == "tab:red" and style == "--":
                marks.add("early exit")
            elif style == ":":
                marks.add("block boundary")
        if any(t.get_text() == SPECIAL for t in ax.get_xticklabels()):
            marks.add("special token: eos [EOS]")
    return marks


def test_legend_lists_only_the_marks_drawn(arith_runs):
    k1, med = arith_runs
    first = records(k1)[0]["id"]
    single = draw([load_trajectory(k1, first)])
    labels = legend_labels(single)
    assert len(labels) == len(set(labels)) and set(labels) == drawn_marks(single)
    assert "early exit" not in labels and "answer block start" in labels
    compare = draw([load_trajectory(k1, first), load_trajectory(med, first)])
    assert set(legend_labels(compare)) == drawn_marks(compare)
    assert "early exit" in legend_labels(compare)


def test_the_eos_glyph_is_named_where_drawn(arith_runs, tmp_path):
    run_dir = arith_runs[0]
    traj = load_trajectory(run_dir, records(run_dir)[0]["id"])  # arith pads with eos
    assert SPECIAL in traj.text_of and traj.specials == ["eos [EOS]"]
    fig = draw([traj])
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert SPECIAL in ticks and "special token: eos [EOS]" in legend_labels(fig)
    # Token ids only (no tokenizer): no glyph drawn, none named.
    steps = [{"positions": [0, 1], "tokens": [5, 6], "entropies": [0.1, 0.2]}]
    record = {"id": "a", "correct": True, "nfe": 1, "trajectory": steps}
    summary = {"identity": {"model": {"name": "oracle"}, "task": {"name": "toy", "gen_length": 2}}}
    write_run(tmp_path / "ids", record, summary)
    plain = draw([load_trajectory(tmp_path / "ids")])
    assert not any(label.startswith("special token") for label in legend_labels(plain))


def write_run(folder, record, summary=None):
    folder.mkdir(parents=True)
    (folder / "records.jsonl").write_text(json.dumps(record) + "\n" + '{"id": "torn", "tra')
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))


def test_records_without_canvas_or_tokenizer(tmp_path):
    """An oracle run (token ids, no tokenizer) written before records held the canvas: every
    uncommitted position is pre-filled (no early exit), and the torn line is skipped, not cut."""
    steps = [
        {"step": 0, "positions": [2], "tokens": [7], "entropies": [0.5], "early_exit": False},
        {"step": 1, "positions": [0, 3], "tokens": [5, 6], "entropies": [0.0, 1.2]},
    ]
    record = {"id": "a", "prompt": "", "output": "", "correct": True, "nfe": 2, "trajectory": steps}
    summary = {"identity": {"model": {"name": "oracle"}, "task": {"name": "toy", "gen_length": 5}}}
    write_run(tmp_path / "run", record, summary)
    size = (tmp_path / "run" / "records.jsonl").stat().st_size
    traj = load_trajectory(tmp_path / "run")
    assert traj.step_of == [1, None, 0, 1, None]
    assert traj.prefilled == [False, True, False, False, True]
    assert traj.text_of[0] == "#5" and traj.exit_step is None
    grid = traj.grid()
    assert grid[0][2] == 0.5 and grid[1][3] == 1.2 and math.isnan(grid[0][0])
    assert (tmp_path / "run" / "records.jsonl").stat().st_size == size  # read only
    assert any("no starting canvas" in n for n in traj.notes)


def test_bad_input_is_one_line(tmp_path, arith_runs):
    with pytest.raises(UserError, match="not a folder"):
        load_trajectory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no records.jsonl"):
        load_trajectory(tmp_path / "empty")
    write_run(tmp_path / "plain", {"id": "a", "nfe": 1, "correct": True})
    with pytest.raises(UserError, match="log_trajectory=true"):
        load_trajectory(tmp_path / "plain")
    with pytest.raises(UserError, match="id=nope has no traced record"):
        load_trajectory(arith_runs[0], "nope")
    with pytest.raises(UserError, match="--compare needs"):
        parse_args(["x", "--compare"])
    with pytest.raises(UserError, match="not an option"):
        parse_args(["x", "colour=never"])
    with pytest.raises(UserError, match=r"\.png or \.svg"):
        show([arith_runs[0], "text=false", f"out={tmp_path / 'x.jpg'}"])


def test_interrupted_run_without_summary_uses_the_canvas(tmp_path):
    """No summary.json yet (a run still going or killed): the region length and the pre-filled
    positions come from the record's canvas (mask id 9; position 3 pre-filled)."""
    steps = [
        {"positions": [4], "tokens": [5], "entropies": [0.2]},
        {"positions": [0, 1, 2], "tokens": [1, 2, 3], "entropies": [0.1, 0.3, 0.0]},
    ]
    canvas = {"region": [9, 9, 9, 7, 9, 9], "answer": [4, 6]}
    record = {"id": 7, "correct": False, "nfe": 2, "trajectory": steps, "canvas": canvas}
    write_run(tmp_path / "run", record)
    traj = load_trajectory(tmp_path / "run", "7")
    assert traj.gen_length == 6 and traj.answer == (4, 6)
    assert traj.prefilled == [False, False, False, True, False, False]
    assert traj.step_of == [1, 1, 1, None, 0, None]  # position 5 left masked
    rows = state_grid(traj)
    assert rows[1] == [MASKED, MASKED, MASKED, PREFILLED, EARLIER, MASKED]
    assert traj.text_of[3] == "#7"  # no tokenizer for an unknown model: ids


@pytest.fixture(scope="module")
def sudoku_run(tmp_path_factory, one_torch_thread):
    """A traced k=1 run of the shipped tiny sudoku9 model on one puzzle."""
    from nclb.runs.runner import run

    out = tmp_path_factory.mktemp("sudoku")
    words = ["model=tiny", "task=sudoku9", "limit=1", "log_trajectory=true", f"out_dir={out}"]
    return run(compose("config", words))["run_dir"]


def test_sudoku9_is_drawn_as_its_9x9_grid(sudoku_run, tmp_path):
    record = records(sudoku_run)[0]
    traj = load_trajectory(sudoku_run)
    assert traj.grid_shape == (9, 9) and traj.grid_box == (3, 3)
    fig = draw([traj])
    grids = [ax for ax in fig.axes if ax.images]
    assert len(grids) == 2  # commit order, entropy at commit
    for ax in grids:
        assert all(image.get_array().shape == (9, 9) for image in ax.images)
        cells = {
            (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
            for t in ax.texts
            if t.get_fontsize() > 8
        }
        assert "".join(cells[divmod(p, 9)] for p in range(81)) == record["output"]
    order = grids[0].images[1].get_array()
    for i, step in enumerate(record["trajectory"]):
        for pos in step["positions"]:
            assert order[divmod(pos, 9)] == i  # the colour is the committing pass
    givens = [p for p, tok in enumerate(record["canvas"]["region"]) if tok != 1]
    assert givens and all(order.mask[divmod(p, 9)] for p in givens)
    assert legend_labels(fig) == ["pre-filled (template / givens)"]  # nothing else drawn
    titles = " ".join(ax.get_title() for ax in grids)
    assert "forward pass that committed" in titles and "entropy" in titles
    save_figure(fig, tmp_path / "s.png")
    # A cell that differs from the gold grid is framed, and the legend names the frame.
    gold = record["gold"]
    framed = draw([dataclasses.replace(traj, gold=("2" if gold[0] == "1" else "1") + gold[1:])])
    assert legend_labels(framed) == ["pre-filled (template / givens)", "differs from gold"]
    frames = [(p.get_x(), p.get_y()) for p in framed.axes[0].patches]
    assert frames == [(-0.45, -0.45)]  # around cell (0, 0) only


def test_grid_layout_comes_from_the_task_not_the_length(tmp_path):
    """An 81-position region of a task without a grid stays a strip; sudoku9 with another
    region length is no grid either."""
    assert task_grid("sudoku9", 81) == ((9, 9), (3, 3))
    assert task_grid("toy", 81) == (None, None) and task_grid("sudoku9", 80) == (None, None)
    steps = [{"positions": list(range(81)), "tokens": [5] * 81, "entropies": [0.1] * 81}]
    record = {"id": "a", "correct": True, "nfe": 1, "trajectory": steps}
    summary = {"identity": {"model": {"name": "oracle"}, "task": {"name": "toy", "gen_length": 81}}}
    write_run(tmp_path / "toy", record, summary)
    fig = draw([load_trajectory(tmp_path / "toy")])
    assert fig.axes[0].images[1].get_array().shape == (1, 81)
