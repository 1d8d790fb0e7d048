"""Data resolution: config data_dir, then $NCLB_DATA_DIR / ../shared/data, then the hub, else a
one-line DataError."""

from __future__ import annotations

import json
import time

import pytest

from nclb.tasks import data
from nclb.tasks.data import DataError, HubSource, load_rows
from nclb.tasks.gsm8k import GSM8kTask

ROW = {"question": "What is 1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"}


def write_gsm8k(folder, question="What is 1+1?"):
    (folder / "gsm8k").mkdir(parents=True)
    (folder / "gsm8k" / "test.jsonl").write_text(json.dumps({**ROW, "question": question}) + "\n")
    return folder


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env data dir, a repo root with no ../shared/data, and the hub offline."""
    monkeypatch.delenv("NCLB_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(data, "repo_root", lambda: tmp_path / "repo")
    return tmp_path


def test_config_data_dir_comes_first(isolated, monkeypatch):
    env = write_gsm8k(isolated / "env", "from env")
    conf = write_gsm8k(isolated / "conf", "from config")
    monkeypatch.setenv("NCLB_DATA_DIR", str(env))
    assert load_rows("gsm8k/test.jsonl", str(conf))[0]["question"] == "from config"
    assert load_rows("gsm8k/test.jsonl", None)[0]["question"] == "from env"


def test_shared_data_beside_repo_is_the_default(isolated):
    write_gsm8k(isolated / "shared" / "data", "from shared")
    assert load_rows("gsm8k/test.jsonl", None)[0]["question"] == "from shared"


def test_real_repo_finds_shared_data(monkeypatch):
    monkeypatch.delenv("NCLB_DATA_DIR", raising=False)
    root = data.repo_root()
    assert (root / "src" / "nclb").is_dir()
    if (root.parent / "shared" / "data").is_dir():
        assert data.default_data_dir() == root.parent / "shared" / "data"


def test_explicit_data_dir_without_the_file_is_an_error(isolated):
    with pytest.raises(DataError, match="data_dir=") as err:
        load_rows("gsm8k/test.jsonl", str(isolated / "empty"))
    assert "\n" not in str(err.value)


def test_missing_data_offline_raises_one_line_fast(isolated):
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        GSM8kTask().examples()
    message = str(err.value)
    assert "\n" not in message and "NCLB_DATA_DIR" in message and "data_dir=" in message
    assert isinstance(err.value, ValueError) and time.monotonic() - start < 3


def test_hub_is_used_when_online_and_nothing_local(isolated, monkeypatch):
    import datasets

    calls = []

    def fake_load(path, name=None, split=None):
        calls.append((path, name, split))
        return [ROW]

    monkeypatch.setattr(data, "hub_online", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    examples = GSM8kTask().examples()
    assert calls == [("openai/gsm8k", "main", "test")] and examples[0].gold == "2"
    with pytest.raises(DataError):  # no hub copy named: still an error
        load_rows("sudoku/d1_4x4_test_sudoku.csv", None, None)
    assert load_rows("x.jsonl", None, HubSource("a/b", "test")) == [ROW]


def test_offline_env_vars_short_circuit(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert data.hub_online() is False


def test_task_reads_config_data_dir(isolated):
    folder = write_gsm8k(isolated / "mine", "custom question")
    task = GSM8kTask.from_config({"data_dir": str(folder), "template": "plain"})
    (example,) = task.examples()
    assert example.prompt.startswith("custom question") and example.gold == "2"
