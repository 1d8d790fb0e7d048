"""Every bad value, missing input and file-system failure ends `nclb` with one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nclb.cli import main
from nclb.runs.runlog import read_records

REPO = Path(__file__).resolve().parents[1]
NCLB = [sys.executable, "-c", "from nclb.cli import main; main()"]
ORACLE = ["model=oracle", "task=toy", "limit=3"]


def one_line_error(capsys, argv: list[str]) -> str:
    """Run `nclb argv` in-process, expect exit status 2 and one `error:` line; return it."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["resume=no"], "resume='no' must be true or false"),
        (["resume=off"], "resume='off' must be true or false"),
        (["log_trajectory=no"], "log_trajectory='no' must be true or false"),
        (["stop_on_eos=1"], "stop_on_eos=1 must be true or false"),
        (["temperature=abc"], "temperature='abc' must be a finite number"),
        (["seed=abc"], "seed='abc' must be an integer >= 0"),
        (["seed=-1"], "seed=-1 must be an integer >= 0"),
        (["decoder=med", "lam=inf"], "lam=inf must be a finite number"),
        (["gamma=-0.5"], "gamma=-0.5 must be a finite number >= 0 or null"),
        (["block=0"], "block=0 must be an integer >= 1"),
        (["gen_length=0"], "gen_length=0 must be an integer >= 1"),
        (["decoder=llada", "decoder.steps=0"], "decoder.steps=0 must be an integer >= 1"),
        (["threads=0"], "threads=0 must be an integer >= 1 or auto"),
        (["threads=many"], "threads='many' must be an integer >= 1 or auto"),
        (["foo"], "'foo' is not a key=value override"),
        (["-m", "seed=1,-1"], "seed=-1"),
    ],
)
def test_bad_values_are_one_line(capsys, tmp_path, args, needle):
    line = one_line_error(capsys, ["run", *ORACLE, f"out_dir={tmp_path}", *args])
    assert needle in line


def test_out_dir_that_is_a_file_or_cannot_be_made_is_one_line(capsys, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    line = one_line_error(capsys, ["run", *ORACLE, f"out_dir={a_file}"])
    assert "is a file, not a folder" in line
    line = one_line_error(capsys, ["run", *ORACLE, f"out_dir={a_file}/sub"])
    assert f"out_dir={a_file}/sub is not a writable folder" in line


def test_gen_length_past_the_models_positions_is_one_line(capsys, tmp_path):
    line = one_line_error(capsys, ["run", "model=tiny", "gen_length=300", f"out_dir={tmp_path}"])
    assert "gen_length=300 does not fit model=tiny" in line and "256 positions" in line


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_corrupt_checkpoint_is_one_line(capsys, tmp_path, damage):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(REPO / "checkpoints" / "tiny-arith", ckpt)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    if damage == "header":
        data = (2**40).to_bytes(8, "little") + data[8:]
    else:
        data = data[: len(data) // 2]
    weights.write_bytes(data)
    line = one_line_error(
        capsys, ["run", "model=tiny", f"model.path={ckpt}", f"out_dir={tmp_path}"]
    )
    assert "model.safetensors is corrupt" in line and "download the checkpoint again" in line


def test_a_sweep_checks_every_models_weights_before_the_first_run(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [*NCLB, "run", "-m", "model=tiny,llada", "limit=2", f"out_dir={tmp_path / 'runs'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "huggingface-cli download GSAI-ML/LLaDA-8B-Instruct" in lines[0]
    assert not list((tmp_path / "runs").rglob("records.jsonl"))  # tiny did not run first


def test_a_missing_data_file_is_found_before_the_first_run(capsys, tmp_path):
    good = tmp_path / "data"
    (good / "gsm8k").mkdir(parents=True)
    (good / "gsm8k" / "test.jsonl").write_text('{"question": "1+1?", "answer": "2 #### 2"}\n')
    runs = tmp_path / "runs"
    line = one_line_error(
        capsys,
        ["run", "-m", "model=reference", "task=gsm8k", f"task.data_dir={good},/nonexistent"]
        + ["limit=1", f"out_dir={runs}"],
    )
    assert "/nonexistent/gsm8k/test.jsonl not found" in line
    assert not list(runs.rglob("records.jsonl"))  # the first setting did not run


FAILING_RUN = """
import errno, sys
import nclb.runs.runlog as runlog
kind, after = sys.argv[1], int(sys.argv[2])
write = runlog.RecordWriter.write
count = [0]
def failing_write(self, record):
    if kind == "disk_full" and count[0] == after:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.file.name))
    count[0] += 1
    write(self, record)
def read_only(path, data):
    raise PermissionError(errno.EACCES, "Permission denied", str(path))
runlog.RecordWriter.write = failing_write
if kind == "read_only":
    runlog.write_json_atomic = read_only
from nclb.cli import main
main(sys.argv[3:])
"""


@pytest.mark.parametrize(
    ("kind", "needle"),
    [("disk_full", "No space left on device"), ("read_only", "Permission denied")],
)
def test_file_system_errors_are_one_line_and_keep_the_records(tmp_path, kind, needle):
    args = ["run", "model=oracle", "task=toy", "limit=6", "batch_size=1", f"out_dir={tmp_path}"]
    r = subprocess.run(
        [sys.executable, "-c", FAILING_RUN, kind, "3", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "records are kept" in errors[0]
    assert "Traceback" not in r.stderr
    (records,) = tmp_path.rglob("records.jsonl")
    assert len(read_records(records)) == (3 if kind == "disk_full" else 6)


def test_sigterm_stops_like_ctrl_c(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "model=oracle", "task=toy", "task.n=100000", "limit=4000", "batch_size=1"]
    with (tmp_path / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            [*NCLB, *args, f"out_dir={out}"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err
        )
    deadline, path = time.time() + 60, None
    while time.time() < deadline and path is None:
        found = list(out.rglob("records.jsonl"))
        if found and found[0].read_bytes().count(b"\n") >= 10:
            path = found[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert path is not None, stderr[-2000:]
    assert proc.returncode == 143, stderr[-2000:]
    assert "interrupted:" in stderr and "run the same command to resume" in stderr
    assert "Traceback" not in stderr
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and len(read_records(path)) == raw.count(b"\n") >= 10


def test_loading_a_corrupt_checkpoint_is_a_one_line_model_error(tmp_path):
    from nclb.errors import UserError
    from nclb.models.hf import load_hf_model

    ckpt = tmp_path / "ckpt"
    shutil.copytree(REPO / "checkpoints" / "tiny-arith", ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes((2**40).to_bytes(8, "little") + weights.read_bytes()[8:])
    with pytest.raises(UserError, match="weights file is corrupt"):
        load_hf_model({"family": "tiny", "path": str(ckpt), "device": "cpu"})


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["=0.2"], "'=0.2' has no key before '='; write key=value"),
        (["+foo=1"], "+foo=1: foo is not a config key of `config`"),
        (["-m", "seed=0,1", "+foo=1"], "+foo=1: foo is not a config key"),
        (["k=true"], "k=True must be an integer >= 1"),
        (["decoder=med", "lam=true"], "lam=True must be a finite number >= 0"),
        (["decoder=llada", "decoder.steps=true"], "decoder.steps=True must be an integer >= 1"),
        (["kéy=1"], "'kéy=1': 'é' cannot be in a key"),
        (["task=arith", "task.n_test=0"], "task.n_test=0 must be an integer >= 1"),
    ],
)
def test_bad_keys_and_values_of_run_are_one_line_before_anything_runs(
    capsys, tmp_path, args, needle
):
    line = one_line_error(capsys, ["run", "model=oracle", "task=toy", f"out_dir={tmp_path}", *args])
    assert needle in line
    assert not list(tmp_path.rglob("records.jsonl"))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            '{"question": "1+1?", "answer": "2 #### 2"}\n{"question": "x",\n',
            "line 2 is not valid JSON",
        ),
        ('{"question": "1+1?", "answer": "2 #### 2"}\n[1, 2]\n', "line 2 is not a JSON object"),
        ('{"question": "1+1?"}\n', "line 1 has no 'answer' field"),
        ("\n", "has no rows"),
    ],
)
def test_a_broken_data_file_is_one_line_naming_the_file(capsys, tmp_path, content, needle):
    data = tmp_path / "data" / "gsm8k" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text(content)
    line = one_line_error(
        capsys,
        ["run", "model=reference", "task=gsm8k", f"task.data_dir={tmp_path / 'data'}"]
        + [f"out_dir={tmp_path / 'runs'}"],
    )
    assert f"{data}" in line and needle in line
    assert not list((tmp_path / "runs").rglob("records.jsonl"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["posterior", "n=-1"], "n=-1 must be an integer >= 1 or null"),
        (["posterior", "n=-498"], "n=-498 must be an integer >= 1 or null"),
        (["posterior", "samples=0"], "samples=0 must be an integer >= 1"),
        (["posterior", "prior=1"], "prior=1 must be true or false"),
        (["trace-score", "n=-1"], "n=-1 must be an integer >= 1 or null"),
        (["finetune", "optim.lr=0"], "optim.lr=0 must be a finite number > 0"),
        (["finetune", "data.gold_n=-1"], "data.gold_n=-1 must be an integer >= 0"),
        (["train", "optim.lr=abc"], "optim.lr='abc' must be a finite number >= 0"),
        (["train", "arch.hidden_size=-1"], "arch.hidden_size=-1 must be an integer >= 1"),
        (["train", "optim.batch_size=0"], "optim.batch_size=0 must be an integer >= 1"),
        (["train", "optim.steps=0"], "optim.steps=0 must be an integer >= 1"),
        (["train", "+optim.foo=1"], "optim.foo is not an optim key"),
        (["train", "+foo=1"], "foo is not a config key of `train`"),
        (["table", "table2", "run=maybe"], "run='maybe' must be true or false"),
        (["table", "table2", "threads=0"], "threads=0 must be an integer >= 1 or auto"),
        (["table", "table2", "=0.2"], "'=0.2' has no key"),
        (["show", "some/run", "text=maybe"], "text='maybe' must be true or false"),
    ],
)
def test_every_commands_values_are_checked_before_it_runs(capsys, tmp_path, args, needle):
    line = one_line_error(capsys, [*args, f"out_dir={tmp_path}"] if args[0] != "show" else args)
    assert needle in line
    assert not any(tmp_path.iterdir())  # nothing written: no checkpoint, no traces


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["=0.2"], "'=0.2' has no key"),
        (["+foo=1"], "foo is not a config key of `lm_eval`"),
        (["kéy=1"], "'é' cannot be in a key"),
        (["num_fewshot=-1"], "num_fewshot=-1 must be an integer >= 0 or null"),
    ],
)
def test_lm_eval_keys_are_checked_before_it_runs(capsys, tmp_path, args, needle):
    pytest.importorskip("lm_eval")
    line = one_line_error(capsys, ["lm-eval", "tasks=nclb_arith", f"out_dir={tmp_path}", *args])
    assert needle in line


@pytest.mark.parametrize("task", ["chain", "toy", "sudoku9", "arith"])
def test_a_task_the_reference_model_cannot_answer_is_one_line_before_anything_runs(
    capsys, tmp_path, task
):
    line = one_line_error(capsys, ["run", "model=reference", f"task={task}", f"out_dir={tmp_path}"])
    assert f"task={task} has none" in line and "task=gsm8k" in line
    assert not any(tmp_path.iterdir())


def test_lm_eval_with_the_reference_model_on_a_task_without_solutions_is_one_line(capsys, tmp_path):
    pytest.importorskip("lm_eval")
    argv = ["lm-eval", "model=reference", "task=arith", f"out_dir={tmp_path}"]
    assert "task=arith has none" in one_line_error(capsys, argv)
    assert not any(tmp_path.iterdir())
