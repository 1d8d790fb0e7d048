"""docs/extending.md's worked example (a decoder, a task and a model family in a folder outside
nclb, named by NCLB_PLUGINS) runs through `nclb run` and a sweep with no edit to nclb."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """The plugin folder of docs/extending.md, written from the page's file blocks."""
    folder = tmp_path_factory.mktemp("my_plugin")
    blocks = FILE_BLOCK.findall((REPO / "docs" / "extending.md").read_text())
    assert {name for name, _ in blocks} >= {
        "leftmost.py",
        "second_look.py",
        "countdown.py",
        "counter.py",
    }
    for name, text in blocks:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def nclb(plugin: Path, *args: str) -> subprocess.CompletedProcess:
    """`nclb ARGS` in a fresh process with NCLB_PLUGINS naming the plugin folder."""
    env = {**os.environ, "NCLB_PLUGINS": str(plugin), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nclb", *args], capture_output=True, text=True, env=env, timeout=300
    )


def summaries(out: Path) -> dict[str, dict]:
    """Each run folder's summary.json under `out`, by the folder's path below `out`."""
    return {
        str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in out.rglob("summary.json")
    }


def test_the_plugin_runs_through_nclb_run(plugin, tmp_path):
    done = nclb(
        plugin, "run", "model=counter", "task=countdown", "decoder=leftmost", f"out_dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr
    (summary,) = summaries(tmp_path).values()
    assert summary["n"] == 10 and summary["accuracy"] == 1.0
    assert summary["mean_nfe"] == 5  # 9 positions, 2 a step


def test_the_plugin_runs_through_a_sweep(plugin, tmp_path):
    args = ["model=counter", "task=countdown", "decoder=leftmost", "decoder.width=1,3"]
    done = nclb(plugin, "run", "-m", *args, f"out_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    found = sorted((s["mean_nfe"], s["accuracy"]) for s in summaries(tmp_path).values())
    assert found == [(3, 1.0), (9, 1.0)]
    assert "2 settings:" in done.stdout


def test_the_plugin_decoder_runs_on_a_shipped_model(plugin, tmp_path):
    args = ["model=oracle", "task=toy", "decoder=leftmost", "limit=4", f"out_dir={tmp_path}"]
    done = nclb(plugin, "run", *args)
    assert done.returncode == 0, done.stderr
    (summary,) = summaries(tmp_path).values()
    assert summary["n"] == 4 and summary["mean_nfe"] == 3


def test_a_plugin_decoder_that_declares_itself_rescorable_gets_a_kl_value(plugin, tmp_path):
    args = ["model=oracle", "task=toy", "decoder=leftmost", "temperature=1.0", "metrics.kl=true"]
    done = nclb(plugin, "run", *args, "limit=4", f"out_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    (summary,) = summaries(tmp_path).values()
    assert summary["kl"]["estimate"] is not None and summary["kl"]["estimate"] >= 0
    refused = nclb(plugin, "run", *args, "decoder=second_look", "limit=4", f"out_dir={tmp_path}")
    assert refused.returncode == 2
    assert "metrics.kl=true cannot score this decoder" in refused.stderr


def test_a_revoking_plugin_decoder_runs_through_the_loop_like_verify(plugin, tmp_path):
    args = ["model=oracle", "task=toy", "decoder=second_look", "temperature=1.0", "limit=20"]
    args.append("log_trajectory=true")
    done = nclb(plugin, "run", *args, f"out_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    (folder,) = [p for p in tmp_path.rglob("records.jsonl")]
    records = [json.loads(line) for line in folder.read_text().splitlines()]
    revoked = sum(len(step["revoked"]) for r in records for step in r["trajectory"])
    assert revoked > 0  # the oracle's leave-one-out conditionals disown some commits
    assert all("?" not in r["output"] for r in records)


def test_the_plugin_decoder_validates_its_fields_before_anything_runs(plugin, tmp_path):
    args = ["model=counter", "task=countdown", "decoder=leftmost", "decoder.width=2,0"]
    done = nclb(plugin, "run", "-m", *args, f"out_dir={tmp_path}")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: decoder.width=0 must be an integer >= 1"
    assert not summaries(tmp_path)


def test_without_the_plugin_its_parts_are_unknown(tmp_path):
    done = nclb(tmp_path / "empty", "run", "decoder=leftmost", f"out_dir={tmp_path}")
    assert done.returncode == 2 and "decoder=leftmost is unknown" in done.stderr


def test_a_plugin_that_is_not_there_is_one_line(tmp_path):
    done = nclb(tmp_path / "missing.py", "run", "model=oracle", "task=toy", f"out_dir={tmp_path}")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("missing.py, which is not a file, folder or module")
