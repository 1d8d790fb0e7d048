"""Hydra's own flags on `nclb`: --cfg shows the resolved config and writes nothing, --info,
shell completion, --hydra-help, --version, and output cut short by a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from nclb import __version__

# Run as the console script is: Hydra names the completion script after sys.argv[0].
NCLB = [sys.executable, "-c", "import sys; sys.argv[0] = 'nclb'; from nclb.cli import main; main()"]


def nclb(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`nclb *args` in `cwd`."""
    return subprocess.run(
        [*NCLB, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cfg_job_shows_the_resolved_values_and_writes_nothing(tmp_path):
    out = tmp_path / "runs"
    r = nclb(
        "run", "--cfg", "job", "decoder=med", "lam=0.3", "block=4", f"out_dir={out}", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["decoder"]["lam"] == 0.3 and shown["lam"] == 0.3
    assert shown["task"]["block"] == 4 and shown["task"]["gen_length"] == 64
    assert list(tmp_path.iterdir()) == []  # neither out_dir nor ./outputs


def test_cfg_short_flag_and_package(tmp_path):
    r = nclb("run", "-c", "job", "-p", "decoder", "decoder=med", "lam=0.3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout.split("\n", 1)[1]) == {
        "name": "med",
        "lam": 0.3,
        "rule": "per_position",
    }
    for kind in ("hydra", "all"):
        r = nclb("run", "--cfg", kind, cwd=tmp_path)
        assert r.returncode == 0 and "sweep:" in r.stdout, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_info_defaults(tmp_path):
    r = nclb("run", "--info", "defaults", "decoder=med", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "decoder/med" in r.stdout and "common/sampler" in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_bash_completion_script_and_queries(tmp_path):
    r = nclb("-sc", "install=bash", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "hydra_bash_completion" in r.stdout and r.stdout.strip().endswith(" nclb")
    query = ("-sc", "query=bash")
    r = nclb(*query, cwd=tmp_path, env={"COMP_LINE": "nclb r"})
    assert r.stdout.split() == ["run"], r.stderr
    r = nclb(*query, cwd=tmp_path, env={"COMP_LINE": "nclb run decoder=m"})
    assert r.stdout.split() == ["decoder=med"], r.stderr
    r = nclb(*query, cwd=tmp_path, env={"COMP_LINE": "nclb train optim.minu"})
    assert r.stdout.split() == ["optim.minutes="], r.stderr


def test_hydra_help_advertises_only_what_works(tmp_path):
    r = nclb("run", "--hydra-help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'eval "$(nclb -sc install=bash)"' in r.stdout and "--cfg,-c" in r.stdout
    for flag in ("--config-name", "--config-path", "--config-dir", "--experimental-rerun"):
        assert flag not in r.stdout
        refused = nclb("run", flag, "x", cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.startswith("error: "), refused.stderr
        assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_flags_hydra_cannot_combine_are_one_line(tmp_path):
    r = nclb("run", "-m", "--cfg", "job", cwd=tmp_path)
    assert (
        r.returncode == 2 and r.stderr == "error: -m and --cfg cannot be used together; pick one\n"
    )


def test_version(tmp_path):
    r = nclb("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(f"nclb {__version__} ")


def test_help_into_a_closed_pipe_has_no_traceback(tmp_path):
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nclb", "--help"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141


def test_a_flag_between_overrides_is_read_as_typed(tmp_path):
    out = tmp_path / "runs"
    args = ["model=oracle", "task=toy", "limit=1", "-m", "decoder=med", "lam=0.1,0.2"]
    r = nclb("run", *args, f"out_dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 settings" in r.stdout and len(list(out.glob("oracle/toy/med-*"))) == 2
