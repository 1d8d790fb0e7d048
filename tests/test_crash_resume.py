"""Kill a run with SIGKILL, or stop it with Ctrl-C (SIGINT), mid-way; the same command finishes
it without redoing or duplicating."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nclb.runs.runlog import read_records

# Far more examples than the 20 the test waits for before it stops the run, so the stop lands
# mid-way even on a fast machine, and few enough that the resume finishes in seconds.
LIMIT = 500
ARGS = [
    "run",
    "model=oracle",
    "task=toy",
    "task.n=100000",
    f"limit={LIMIT}",
    "batch_size=1",
    "decoder=ktoken",
    "k=1",
]
NCLB = [sys.executable, "-c", "from nclb.cli import main; main()"]
# One torch thread: on a small shared CPU, thread hand-offs dominate the oracle's tiny steps.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_stop_then_resume(tmp_path, sig):
    out = tmp_path / "runs"
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*NCLB, *ARGS, f"out_dir={out}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=ENV,
            # A shell without job control starts background jobs with SIGINT ignored, and the
            # child would inherit that (as under a CI runner): give it Ctrl-C's default back.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    deadline = time.time() + 60
    path = None
    while time.time() < deadline:
        found = list(out.rglob("records.jsonl"))
        if found and found[0].read_bytes().count(b"\n") >= 20:  # stop early: far from the end
            path = found[0]
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    stderr = log.read_text()
    assert path is not None, "the run wrote no records"
    if sig == signal.SIGINT:
        # Ctrl-C: a clean exit that says what was kept, and no torn line to cut off.
        assert proc.returncode == 130, stderr[-2000:]
        assert "interrupted:" in stderr and "run the same command to resume" in stderr
        raw = path.read_bytes()
        assert raw.endswith(b"\n")
        assert len(read_records(path)) == raw.count(b"\n")
        assert path.stat().st_size == len(raw)
    partial = read_records(path)
    assert 0 < len(partial) < LIMIT
    done = subprocess.run(
        [*NCLB, *ARGS, f"out_dir={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    records = read_records(path)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == LIMIT
    assert records[: len(partial)] == partial
    assert all(r["correct"] for r in records)
    assert not (path.parent / "summary.json.tmp").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["records.jsonl", "summary.json"]


def test_a_replaced_checkpoint_is_not_resumed_but_its_records_are_kept(tmp_path, capsys):
    import shutil
    from pathlib import Path

    from nclb.config.compose import compose
    from nclb.runs.runner import run

    ckpt = tmp_path / "ckpt"
    shutil.copytree(Path(__file__).resolve().parents[1] / "checkpoints" / "tiny-arith", ckpt)
    overrides = ["model=tiny", f"model.path={ckpt}", "task=arith", f"out_dir={tmp_path / 'runs'}"]
    first = run(compose("config", [*overrides, "limit=2"]))
    folder = Path(first["run_dir"])
    records = folder / "records.jsonl"
    os.utime(records, (1, 1))  # the records predate the checkpoint below
    run(compose("config", [*overrides, "limit=3"]))
    assert "starting over" in capsys.readouterr().err
    stale = list(folder.glob("records.stale-*.jsonl"))
    assert len(stale) == 1 and len(read_records(stale[0])) == 2
    assert len(read_records(records)) == 3  # all three decoded again, none resumed
    run(compose("config", [*overrides, "limit=3"]))  # now up to date: resumed, nothing set aside
    assert len(list(folder.glob("records.stale-*.jsonl"))) == 1


def test_the_summary_describes_every_record_in_the_folder(tmp_path):
    import json
    from pathlib import Path

    from nclb.config.compose import compose
    from nclb.runs.runner import run

    overrides = ["model=oracle", "task=toy", f"out_dir={tmp_path}", "decoder=ktoken", "k=1"]
    first = run(compose("config", [*overrides, "limit=12"]))
    again = run(compose("config", [*overrides, "limit=5"]))  # a smaller limit, same folder
    assert first["run_dir"] == again["run_dir"]
    summary = json.loads((Path(again["run_dir"]) / "summary.json").read_text())
    assert summary["n"] == 12 == len(read_records(Path(again["run_dir"]) / "records.jsonl"))


def folder_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_stray_lines_and_stubs_are_set_aside_and_the_folder_stays_rerunnable(tmp_path, capsys):
    import json
    from pathlib import Path

    from nclb.config.compose import compose
    from nclb.runs.runner import run

    overrides = ["model=oracle", "task=toy", f"out_dir={tmp_path}", "decoder=ktoken", "k=1"]
    folder = Path(run(compose("config", [*overrides, "limit=6"]))["run_dir"])
    path = folder / "records.jsonl"
    good = path.read_bytes()
    real = json.loads(good.splitlines()[2])
    stray = [
        json.dumps({"id": real["id"], "correct": True}),  # a stub before the real record
        json.dumps({**real, "nfe": "six"}),  # a wrong type, also before it
        json.dumps({"id": "toy-6", "correct": True}),  # a stub of an example not yet run
    ]
    path.write_bytes("\n".join(stray).encode() + b"\n" + good + b'{"id": "bogus"}\n')
    capsys.readouterr()
    summary = run(compose("config", [*overrides, "limit=7"]))
    err = capsys.readouterr().err
    assert "moved 4 incomplete record(s) (line 1: missing field(s)" in err
    assert "line 2: 'nfe' is a string, not an integer" in err and "kept 6 records" in err
    assert summary["n"] == 7 and summary["accuracy"] == 1.0
    records = read_records(path)
    assert [r["id"] for r in records] == [f"toy-{i}" for i in range(7)]  # toy-6 was decoded
    assert path.read_bytes().startswith(good)
    (side,) = folder.glob("records.set-aside-*.jsonl")
    assert side.read_text().splitlines() == [*stray, '{"id": "bogus"}']
    assert folder_files(folder) == ["records.jsonl", side.name, "summary.json"]
    again = run(compose("config", [*overrides, "limit=7"]))  # nothing left to set aside
    assert again["n"] == 7 and "moved" not in capsys.readouterr().err
    assert len(list(folder.glob("records.set-aside-*.jsonl"))) == 1


def test_a_rejected_run_leaves_no_folder_behind(tmp_path):
    import pytest

    from nclb.config.compose import compose
    from nclb.errors import UserError
    from nclb.runs.runner import run

    out = tmp_path / "runs"
    with pytest.raises(UserError, match="gen_length=5 leaves no room"):
        run(compose("config", ["model=tiny", "task=arith", "gen_length=5", f"out_dir={out}"]))
    assert not out.exists()  # no folder holding only a .lock


def test_a_full_disk_at_the_summary_leaves_no_temp_file_and_a_rerun_finishes(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    import pytest

    from nclb.config.compose import compose
    from nclb.runs.runner import run

    overrides = ["model=oracle", "task=toy", f"out_dir={tmp_path}", "limit=3"]
    real_write_text = Path.write_text

    def full_disk(self, data, *args, **kwargs):
        real_write_text(self, "")  # the temp file is created, its bytes do not fit
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run(compose("config", overrides))
    monkeypatch.undo()
    (folder,) = {p.parent for p in tmp_path.rglob("records.jsonl")}
    assert folder_files(folder) == ["records.jsonl"]  # no summary temp file, no lock
    assert run(compose("config", overrides))["n"] == 3
    assert folder_files(folder) == ["records.jsonl", "summary.json"]
