"""Kill a run with SIGKILL mid-way; the same command finishes it without redoing or duplicating."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from nclb.runlog import read_records

ARGS = [
    "run",
    "model=oracle",
    "task=toy",
    "task.n=100000",
    "limit=1500",
    "batch_size=1",
    "decoder=ktoken",
    "k=1",
]
NCLB = [sys.executable, "-c", "from nclb.cli import main; main()"]


def test_sigkill_then_resume(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [*NCLB, *ARGS, f"out_dir={out}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    path = None
    while time.time() < deadline:
        found = list(out.rglob("records.jsonl"))
        if found and found[0].stat().st_size > 20_000:
            path = found[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert path is not None, "the run wrote no records"
    partial = read_records(path)
    assert 0 < len(partial) < 1500
    done = subprocess.run(
        [*NCLB, *ARGS, f"out_dir={out}"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    records = read_records(path)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 1500
    assert records[: len(partial)] == partial
    assert all(r["correct"] for r in records)
    assert not (path.parent / "summary.json.tmp").exists()
