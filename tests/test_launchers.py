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


@pytest.fixture
def hydra_runtime():
    """Hydra's runtime config, cleared again after the test."""
    from hydra.core.hydra_config import HydraConfig

    yield
    HydraConfig.instance().cfg = None


def hydra_job_config(launcher: str, job: int, mode: str = "MULTIRUN", **launcher_keys):
    """Hydra's runtime config as the given launcher would set it for sweep job `job`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = mode
        cfg.hydra.job.num = job
        cfg.hydra.launcher.update(launcher_keys)
    HydraConfig.instance().set_config(cfg)


@pytest.mark.parametrize(
    "launcher, keys, device, gpus, expected",
    [
        ("local", {}, "auto", 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]),
        ("local", {}, "cuda", 2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]),
        ("local", {"n_jobs": -1}, "auto", 3, ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]),
        ("local", {}, "cuda:1", 4, ["cuda:1"] * 5),  # a set GPU is kept
        ("local", {}, "cpu", 4, ["cpu"] * 5),
        ("local", {}, "auto", 0, ["auto"] * 5),  # no GPU: auto stays auto (-> cpu)
        ("local", {"n_jobs": 1}, "auto", 4, ["auto"] * 5),  # one job at a time
        ("basic", {}, "auto", 4, ["auto"] * 5),  # Hydra's sequential launcher
    ],
)
def test_parallel_local_sweep_jobs_get_a_gpu_each(
    hydra_runtime, monkeypatch, launcher, keys, device, gpus, expected
):
    import torch

    from nclb.cli import place_sweep_job

    if launcher == "local":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    placed = []
    for job in range(5):
        hydra_job_config(launcher, job, **keys)
        data = {"device": device, "model": {"name": "llada"}}
        place_sweep_job(data)
        placed.append(data["device"])
    assert placed == expected


def test_a_single_run_keeps_device_auto(hydra_runtime, monkeypatch):
    import torch

    from nclb.cli import place_sweep_job

    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    hydra_job_config("local", 3, mode="RUN")
    data = {"device": "auto"}
    place_sweep_job(data)
    assert data == {"device": "auto"}
