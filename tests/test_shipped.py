"""Every committed table rebuilds byte for byte from the inputs shipped beside it
(results/logs/<stem>.json) on a fresh clone: no outputs/, `run=false` (the cache table:
`--no-run`), nothing decoded. The same is checked on small tables built here: a grid of runs
(with a figure, a required and an optional input), a `nclb trace-score` figure, an lm-eval
cross-check and the cache table."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from nclb.config.compose import compose
from nclb.config.settings import resolve
from nclb.errors import UserError
from nclb.experiments.cache_table import MODES, PANELS, overrides
from nclb.locations import REPO_ROOT
from nclb.runs.identity import run_folder
from nclb.tables import committed
from nclb.tables.make import make_table
from script_module import script

RESULTS = REPO_ROOT / "results"
SHIPPED = sorted((RESULTS / "logs").glob("*.json"))
FIGURES = (".png", ".svg")
QUIET = {"log": lambda *args, **kwargs: None}


def grid_and_model(stem: str) -> tuple[str, str]:
    """The grid and model kind of results/<stem>.* (table2-llada: table2, llada)."""
    for model in ("llada", "dream"):
        if stem.endswith(f"-{model}"):
            return stem[: -len(model) - 1], model
    return stem, "tiny"


def rebuild(stem: str) -> list[Path]:
    """Rebuild results/<stem>.* in the current folder from its shipped inputs, running nothing."""
    if stem == "cache":
        return script("cache_table").main(["--no-run"])
    name, model = grid_and_model(stem)
    return make_table([name, f"model={model}", "run=false"], **QUIET)


def fresh_clone(tmp_path: Path, monkeypatch) -> Path:
    """Work in a folder laid out as a fresh clone's: the committed checkpoints and
    results/logs, no outputs/; the code counts as committed (a dirty tree stamps every output,
    tested in test_figures.py). Returns its results/."""
    (tmp_path / "checkpoints").symlink_to(REPO_ROOT / "checkpoints")
    shutil.copytree(RESULTS / "logs", tmp_path / "results" / "logs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(committed, "uncommitted_code", lambda root: [])
    return tmp_path / "results"


def made_by_this_matplotlib(figure: Path) -> bool:
    """Whether a committed figure was saved by the installed matplotlib (its PNG and SVG
    bytes are reproducible with the same matplotlib, not across its versions)."""
    import matplotlib

    found = re.search(rb"Matplotlib v(?:ersion)?(\d[\w.]*)", figure.read_bytes())
    return bool(found) and found.group(1).decode() == matplotlib.__version__


@pytest.mark.parametrize("log", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_committed_table_rebuilds_byte_identical_from_its_shipped_logs(
    log, tmp_path, monkeypatch
):
    results = fresh_clone(tmp_path, monkeypatch)
    written = {p.resolve().relative_to(results.resolve()): p for p in rebuild(log.stem)}
    committed_files = {p.relative_to(RESULTS) for p in RESULTS.glob(f"{log.stem}.*")}
    assert committed_files | {log.relative_to(RESULTS)} <= set(written)
    assert not (tmp_path / "outputs").exists()  # nothing was run
    for name, path in sorted(written.items()):
        original = RESULTS / name
        assert original.is_file(), f"the rebuild wrote {name}, which results/ does not hold"
        if original.suffix in FIGURES and not made_by_this_matplotlib(original):
            warnings.warn(f"{name}: saved by another matplotlib; bytes not compared", stacklevel=1)
            continue
        assert path.read_bytes() == original.read_bytes(), f"{name} differs from results/{name}"


def test_every_committed_table_ships_its_logs():
    """Each table in results/ (not the README or the bench reports, which are timings and not
    built from logs) has its inputs in results/logs, so the test above covers it."""
    tables = {p.stem for p in RESULTS.glob("*.md")} - {"README"}
    tables = {stem for stem in tables if not stem.startswith("bench")}
    assert tables - {p.stem for p in SHIPPED} == set()


def snapshot(paths: list[Path]) -> dict[str, bytes]:
    """Each written file's bytes, by name."""
    return {p.name: p.read_bytes() for p in paths}


GRID = """
name: shipped_demo
title: Thresholds on the toy task
figures:
  - {{kind: acc_vs_nfe, name: shipped_demo}}
models:
  tiny:
    - label: toy
      requires:
        - {{path: {needed}, missing: "made by another command"}}
      overrides: [model=oracle, task=toy, decoder=threshold, limit=4, batch_size=4]
      rows:
        - {{series: threshold, sweep: {{decoder.tau: [0.5, 0.9]}}}}
    - label: optional
      optional: true
      requires:
        - {{path: {optional}, missing: "made by another command"}}
      overrides: [model=oracle, task=toy, decoder=threshold, limit=4, batch_size=4, seed=1]
      rows:
        - {{series: threshold seed 1, sweep: {{decoder.tau: [0.7]}}}}
"""


def test_a_grid_table_rebuilds_from_its_shipped_logs_without_its_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(committed, "uncommitted_code", lambda root: [])
    needed, optional = tmp_path / "needed", tmp_path / "optional"
    needed.mkdir()
    optional.mkdir()
    grid = tmp_path / "shipped_demo.yaml"
    grid.write_text(GRID.format(needed=needed, optional=optional))
    results, runs = tmp_path / "results", tmp_path / "runs"
    args = [str(grid), f"out_dir={runs}", f"results={results}"]
    first = snapshot(make_table(args, **QUIET))
    assert {"shipped_demo.md", "shipped_demo.png", "shipped_demo.svg", "shipped_demo.json"} <= set(
        first
    )
    assert len(json.loads(first["shipped_demo.json"])["runs"]) == 3
    # A fresh clone: no run folders, and neither input the runs needed.
    shutil.rmtree(runs)
    needed.rmdir()
    optional.rmdir()
    again = snapshot(make_table([*args, "run=false"], **QUIET))
    assert again == first
    assert not runs.exists()
    assert "Left out" not in again["shipped_demo.md"].decode()
    # Without the shipped logs the missing input is what the error names.
    with pytest.raises(UserError, match="needed does not exist; made by another command"):
        make_table([str(grid), f"out_dir={runs}", f"results={tmp_path / 'x'}", "run=false"])


def test_a_trace_score_figure_rebuilds_from_its_shipped_summaries(tmp_path, monkeypatch):
    monkeypatch.setattr(committed, "uncommitted_code", lambda root: [])
    base, results = tmp_path / "base", tmp_path / "results"
    base.mkdir()
    grid = tmp_path / "f4.yaml"
    common = "model=tiny, task=arith, n=3, 'fractions=[0.0,0.5,1.0]', threads=1"
    grid.write_text(
        "name: f4\nkind: correlation\ntitle: Figure 4\npaper: figure4\nmodels:\n  tiny:\n"
        f"    - label: shipped\n      overrides: [{common}, out_dir={tmp_path / 'a'}]\n"
        "    - label: base\n      optional: true\n"
        f"      requires: [{{path: {base}, missing: train it}}]\n"
        f"      overrides: [{common}, seed=1, out_dir={tmp_path / 'b'}]\n"
    )
    first = snapshot(make_table([str(grid), f"results={results}"], **QUIET))
    assert {"f4.md", "f4.csv", "f4.tex", "f4.png", "f4.svg", "f4.json"} <= set(first)
    assert len(json.loads(first["f4.json"])["runs"]) == 2
    for folder in (tmp_path / "a", tmp_path / "b", base):
        shutil.rmtree(folder)
    assert snapshot(make_table([str(grid), "run=false", f"results={results}"], **QUIET)) == first
    with pytest.raises(UserError, match="no `nclb trace-score` output"):
        make_table([str(grid), "run=false", f"results={tmp_path / 'x'}"], **QUIET)


def test_an_lmeval_crosscheck_rebuilds_from_what_it_read(tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setattr(committed, "uncommitted_code", lambda root: [])
    results, runs = tmp_path / "results", tmp_path / "runs"
    grid = tmp_path / "xc.yaml"
    grid.write_text(
        "name: xc\nkind: lmeval_crosscheck\ntitle: Cross-check\nmodels:\n  tiny:\n"
        "    - label: reference\n      overrides: [tasks=nclb_gsm8k, model=reference, "
        "task=gsm8k, decoder=med, lam=0.2, block=1024, limit=3]\n"
    )
    args = [str(grid), f"out_dir={runs}", f"results={results}"]
    first = snapshot(make_table(args, **QUIET))
    [kept] = json.loads(first["xc.json"])["runs"].values()
    assert set(kept) == {"summary", "records", "samples"} and len(kept["records"]) == 3
    assert all(set(r) == {"correct"} for r in kept["records"].values())  # no disagreement
    shutil.rmtree(runs)
    assert snapshot(make_table([*args, "run=false"], **QUIET)) == first


def test_the_shipped_lmeval_outputs_give_the_same_rows_and_disagreements():
    from nclb.tables.lmeval_crosscheck import compact_outputs, compare

    long = "step " * 60 + "The answer is \\boxed{7}."
    records = {
        f"t/{i}/0": {
            "id": f"t/{i}/0",
            "correct": i != 1,
            "example_id": f"ex-{i}",
            "gold": "7",
            "prediction": "7" if i != 1 else "8",
            "output": long,
            "prompt": "a long prompt " * 20,
            "nfe": 12,
        }
        for i in range(4)
    }
    records["t/9/1"] = {"id": "t/9/1", "output": "a loglikelihood request"}  # no verdict
    samples = [
        {
            "task": "t",
            "doc_id": i,
            "filter": rule,
            "target": "7",
            "filtered_resps": [long] if rule == "none" else ["7" if i != 2 else "x"],
            "metrics": {"exact_match": float(i != 2 if rule != "none" else i != 1)},
        }
        for rule in ("strict-match", "none")
        for i in range(4)
    ]
    outputs = {"cfg": {"model": {"name": "m"}}, "summary": {"git": "a"}, "records": records}
    outputs["samples"] = samples
    kept = json.loads(json.dumps(compact_outputs(outputs)))
    assert compare("s", {**outputs, **kept}) == compare("s", outputs)
    assert len(compare("s", outputs)[1]) == 2  # docs 1 and 2 under strict-match; "none" agrees
    assert set(kept["records"]["t/0/0"]) == {"correct"}
    assert kept["records"]["t/1/0"]["output"].startswith("...")
    assert [s["filtered_resps"] for s in kept["samples"] if s["filtered_resps"]] == [["7"], ["x"]]
    assert compact_outputs({**outputs, **kept}) == kept  # a rebuild ships the same


def log_cache_runs(out: Path) -> None:
    """Logged run folders for every setting of the cache table (summary and outputs written
    here, not decoded: the table only reads them)."""
    for p, (task, n, decoders, refresh, audit_n) in enumerate(PANELS):
        for d, decoder in enumerate(decoders.values()):
            for m, mode in enumerate(MODES):
                keys = overrides(task, n, decoder, mode, refresh, out)
                settings = [(keys, n)]
                if mode != "none":
                    audit = overrides(task, audit_n, decoder, mode, refresh, out)
                    settings.append(([*audit, "cache.audit=true"], audit_n))
                for keys, count in settings:
                    folder = run_folder(resolve(compose("config", keys)))
                    folder.mkdir(parents=True)
                    summary = {
                        "n": count,
                        "accuracy": 0.9 - 0.01 * d,
                        "mean_nfe": 50.0 / (1 + d),
                        "mean_computed": 4000.0 / (1 + m),
                        "examples_per_s": 5.0 * (1 + m),
                        "cpu_seconds": count / (4.0 * (1 + m + d)),
                        "mean_cache_kl": 1e-4 * m if mode != "none" else None,
                        "git": f"rev{p}",
                    }
                    (folder / "summary.json").write_text(json.dumps(summary))
                    lines = [
                        {"id": f"{task}-{i}", "output": f"out {i}" if i > m else "changed"}
                        for i in range(count)
                    ]
                    (folder / "records.jsonl").write_text(
                        "".join(json.dumps(r) + "\n" for r in lines)
                    )


def test_the_cache_table_rebuilds_from_its_shipped_inputs(tmp_path, monkeypatch):
    cache = script("cache_table")
    out, results = tmp_path / "cache", tmp_path / "results"
    log_cache_runs(out)
    args = ["--out-dir", str(out), "--results", str(results)]
    first = snapshot(cache.main(args))
    assert set(first) == {"cache.md", "cache.csv", "cache.json"}
    shipped = json.loads(first["cache.json"])
    assert len(shipped["runs"]) == sum(len(d) * 5 for _, _, d, _, _ in PANELS)
    assert "git rev0, rev1" in first["cache.md"].decode()
    shutil.rmtree(out)
    assert snapshot(cache.main([*args, "--no-run"])) == first
    assert not out.exists()
    with pytest.raises(UserError, match="is not logged .* drop --no-run"):
        cache.main(["--out-dir", str(out), "--results", str(tmp_path / "x"), "--no-run"])


def test_configs_that_differ_only_in_where_the_data_is_read_are_the_same() -> None:
    """A shipped summary logged with the data in one folder serves a clone whose data is in
    another (task.data_dir, like the device, is not part of what a run computes)."""
    from nclb.tables.extras import same_config

    here = {"task": {"name": "gsm8k", "data_dir": "/a/data"}, "model": {"name": "reference"}}
    there = {"task": {"name": "gsm8k", "data_dir": "/b/data"}, "model": {"name": "reference"}}
    assert same_config(here, there)
    assert not same_config(here, {**there, "task": {"name": "math", "data_dir": "/a/data"}})
