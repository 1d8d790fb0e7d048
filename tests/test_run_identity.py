"""Run folders: settings that cannot change the outputs (where the same data is read from, the
batch size, the device) share one folder; summary.json says what the model resolved to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nclb.config.compose import compose
from nclb.config.settings import resolve
from nclb.runs.identity import run_dir, run_folder, run_identity
from nclb.runs.runlog import read_records
from nclb.runs.runner import run

REPO = Path(__file__).resolve().parents[1]


def folder(*overrides: str) -> Path:
    """The run folder `nclb run` would use for these overrides."""
    return run_folder(resolve(compose("config", list(overrides))))


def test_batch_size_and_device_share_one_folder():
    base = ["model=oracle", "task=toy"]
    assert folder(*base, "batch_size=1", "device=cpu") == folder(*base, "batch_size=8")
    assert folder(*base, "seed=1") != folder(*base)


def test_the_data_folder_does_not_split_run_folders(tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    for dest in (one, two):
        (dest / "gsm8k").mkdir(parents=True)
        (dest / "gsm8k" / "test.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    base = ["model=reference", "task=gsm8k"]
    monkeypatch.setenv("NCLB_DATA_DIR", str(one))
    first = folder(*base)
    monkeypatch.setenv("NCLB_DATA_DIR", str(two))
    assert folder(*base) == first
    assert folder(*base, f"task.data_dir={one}") == first
    assert folder(*base, "task.template=plain") != first


def test_summary_carries_the_resolved_model(tmp_path):
    summary = run(compose("config", ["model=tiny", "task=arith", "limit=2", f"out_dir={tmp_path}"]))
    loaded = summary["loaded_model"]
    assert loaded["family"] == "tiny" and loaded["dtype"] == "float32"
    assert isinstance(loaded["mask_id"], int) and loaded["eos_ids"]
    on_disk = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    assert on_disk["loaded_model"] == loaded


def test_summary_of_a_model_without_describe_has_its_special_ids(tmp_path):
    summary = run(compose("config", ["model=oracle", "task=toy", "limit=2", f"out_dir={tmp_path}"]))
    assert set(summary["loaded_model"]) == {"mask_id", "pad_id", "eos_ids"}


def test_records_logged_under_one_data_folder_resume_under_another(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "gsm8k").mkdir(parents=True)
    line = '{"question": "What is 1+1?", "answer": "1+1=2 #### 2"}\n'
    (data / "gsm8k" / "test.jsonl").write_text(line * 3)
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    args = ["model=reference", "task=gsm8k", "limit=2", f"out_dir={tmp_path}/runs"]
    monkeypatch.setenv("NCLB_DATA_DIR", str(data))
    first = run(compose("config", args))
    monkeypatch.setenv("NCLB_DATA_DIR", str(moved))
    again = run(compose("config", args))
    assert again["run_dir"] == first["run_dir"] and again["n"] == 2
    assert again["this_invocation"]["examples_per_s"] is None  # nothing decoded again
    assert again["examples_per_s"] == first["examples_per_s"]  # the whole folder's figure


def test_a_rerun_leaves_the_folder_timing_and_extending_adds_to_it(tmp_path):
    args = ["model=oracle", "task=toy", "decoder=med", "lam=0.2", f"out_dir={tmp_path}"]
    first = run(compose("config", [*args, "limit=3"]))
    assert first["this_invocation"]["decoded"] == 3 and first["timed_examples"] == 3
    assert first["seconds"] == first["this_invocation"]["seconds"] > 0
    again = run(compose("config", [*args, "limit=3"]))
    assert again["this_invocation"] == {
        "decoded": 0,
        "seconds": again["this_invocation"]["seconds"],
        "examples_per_s": None,
        "cpu_seconds": again["this_invocation"]["cpu_seconds"],
    }
    keys = ("n", "accuracy", "mean_nfe", "seconds", "timed_examples", "examples_per_s")
    for key in (*keys, "cpu_seconds"):
        assert again[key] == first[key], key
    more = run(compose("config", [*args, "limit=5"]))
    assert more["n"] == 5 and more["timed_examples"] == 5
    assert more["this_invocation"]["decoded"] == 2
    assert more["seconds"] == first["seconds"] + more["this_invocation"]["seconds"]
    assert more["examples_per_s"] == 5 / more["seconds"]
    assert more["cpu_seconds"] == first["cpu_seconds"] + more["this_invocation"]["cpu_seconds"]
    fresh = run(compose("config", [*args, "limit=2", "resume=false"]))
    assert fresh["n"] == 2 and fresh["timed_examples"] == 2  # started over: counted from zero
    assert fresh["seconds"] == fresh["this_invocation"]["seconds"]


def test_log_trajectory_gets_its_own_folder_and_leaves_others_named_as_before(tmp_path):
    base = ["model=oracle", "task=toy", f"out_dir={tmp_path}"]
    plain = folder(*base)
    assert folder(*base, "log_trajectory=false") == plain
    resolved = resolve(compose("config", base))
    identity = run_identity(
        resolved.model, resolved.task, resolved.decoder_cfg, resolved.sampler.identity(), 0
    )
    assert run_dir(tmp_path, identity) == plain  # the identity of a run without trajectories
    untraced = run(compose("config", [*base, "limit=2"]))
    traced = run(compose("config", [*base, "limit=3", "log_trajectory=true"]))
    assert traced["run_dir"] != untraced["run_dir"] and traced["identity"]["log_trajectory"]
    assert Path(traced["run_dir"]) == folder(*base, "log_trajectory=true")
    kept = read_records(Path(untraced["run_dir"]) / "records.jsonl")
    logged = read_records(Path(traced["run_dir"]) / "records.jsonl")
    assert len(kept) == 2 and not any("trajectory" in r for r in kept)
    assert len(logged) == 3 and all(r["trajectory"] for r in logged)
