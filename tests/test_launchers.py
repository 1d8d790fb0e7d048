"""Sweeps through the Hydra launchers: parallel jobs never append to the same records file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from nclb.config import compose as composition
from nclb.config import config_dir
from nclb.errors import UserError
from nclb.runs.lock import RunLock
from nclb.runs.runlog import RECORDS, SUMMARY, read_records

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
NCLB = [sys.executable, "-m", "nclb"]


def launcher_config(name: str) -> dict:
    """The composed hydra.launcher node of configs/hydra/launcher/<name>.yaml."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("config", [f"hydra/launcher={name}"], return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=False)


def test_launcher_configs_extend_the_plugins():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    local = launcher_config("local")
    assert local["_target_"].endswith("JoblibLauncher") and local["n_jobs"] == 2
    slurm = launcher_config("slurm")
    assert slurm["_target_"].endswith("SlurmLauncher")
    assert slurm["max_num_timeout"] == 3 and slurm["timeout_min"] == 240


def test_a_launcher_without_its_plugin_fails_with_the_install_line(monkeypatch):
    monkeypatch.setitem(
        composition.LAUNCHER_PLUGINS, "local", ("no_such_plugin_x", "no-such-plugin")
    )
    with pytest.raises(UserError, match=r"needs the no-such-plugin package.*\[cluster\]"):
        composition.check_groups(["hydra/launcher=local", "model=oracle"])


def test_joblib_sweep_runs_jobs_in_parallel_without_sharing_a_records_file(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    out = tmp_path / "runs"
    # Four jobs, two at a time; the jobs that differ only in limit share a run folder.
    args = ["run", "-m", "hydra/launcher=local", "model=oracle", "task=toy", "task.n=1000"]
    args += ["decoder=ktoken", "k=1,2", "limit=40,80", f"out_dir={out}"]
    done = subprocess.run(
        [*NCLB, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folders = sorted(p.parent for p in out.rglob(SUMMARY))
    assert len(folders) == 2, "k=1 and k=2 write separate run folders"
    for folder in folders:
        ids = [r["id"] for r in read_records(folder / RECORDS)]
        assert len(ids) == len(set(ids)) == 80
        assert json.loads((folder / SUMMARY).read_text())["n"] in (40, 80)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_second_process_waits_for_the_run_folder_lock(tmp_path):
    folder, log = tmp_path / "run", tmp_path / "stderr.txt"
    lock = RunLock(folder)
    code = (
        "import sys; from pathlib import Path; from nclb.runs.lock import RunLock; "
        "RunLock(Path(sys.argv[1])); print('got it', flush=True)"
    )
    with log.open("w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(folder)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=ENV,
        )
    try:
        deadline = time.time() + 60
        while "waiting for another process" not in log.read_text():
            assert child.poll() is None, "the child took a lock that is held"
            assert time.time() < deadline, "the child never reached the lock"
            time.sleep(0.1)
        time.sleep(0.3)
        assert child.poll() is None, "the child went on while the lock was held"
    finally:
        lock.release()
    out, _ = child.communicate(timeout=60)
    assert out.strip() == "got it"
