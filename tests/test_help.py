"""`nclb COMMAND --help` explains every key from the YAML comments; a multirun ends with one
table and leaves no empty folders."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from nclb.cli import COMMANDS, main
from nclb.config import config_dir
from nclb.confighelp import key_docs, shared_blocks, split_comment


def help_text(capsys, command: str) -> str:
    main([command, "--help"])
    return capsys.readouterr().out


def leaf_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            keys += leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


@pytest.mark.parametrize("command", sorted(n for n, c in COMMANDS.items() if c.config))
def test_help_lists_every_key_with_its_comment_and_examples(capsys, command):
    text = help_text(capsys, command)
    config_name = COMMANDS[command].config
    path = config_dir() / f"{config_name}.yaml"
    for file in [path, *shared_blocks(path)]:  # the root's keys and its shared blocks' (common/)
        data = yaml.safe_load(file.read_text()) or {}
        keys = leaf_keys({k: v for k, v in data.items() if k not in ("defaults", "hydra")})
        assert keys or file.parent.name == "common", file
        for key in keys:
            assert f"  {key}=" in text, (file, key)
        for doc in key_docs(file):
            if doc.comment:
                assert doc.comment in text
    assert f"usage: nclb {command}" in text and "examples:\n  nclb " in text
    assert "Hydra" not in text and "grids" not in text  # not Hydra's raw dump


def test_run_help_documents_threads_and_the_groups(capsys):
    text = help_text(capsys, "run")
    assert "threads=1" in text and "torch CPU threads" in text
    assert "model=tiny" in text and "options: " in text and "decoder=ktoken" in text


def test_table_help_lists_every_grid(capsys):
    text = help_text(capsys, "table")
    for path in (config_dir() / "grids").glob("*.yaml"):
        title = yaml.safe_load(path.read_text())["title"]
        assert f"  {path.stem}" in text and title in text


def test_comments_after_quoted_hashes_are_split_correctly():
    assert split_comment(' "a # b"  # the key') == ('"a # b"', "the key")
    assert split_comment(" 0.2") == ("0.2", "")


def test_multirun_prints_one_table_and_leaves_no_empty_folders(tmp_path):
    sweep = tmp_path / "multirun"
    r = subprocess.run(
        [sys.executable, "-c", "from nclb.cli import main; main()", "run", "-m"]
        + ["model=oracle", "task=toy", "decoder=med", "lam=0.0,0.5", "limit=3"]
        + [f"out_dir={tmp_path / 'runs'}", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    table = r.stdout[r.stdout.index("2 settings:") :].splitlines()
    assert table[1].split() == ["model", "task", "label", "n", "accuracy", "NFE"]
    rows = [line.split() for line in table[2:]]
    assert [row[:3] for row in rows] == [["oracle", "toy", "med"]] * 2
    assert {row[3] for row in rows} == {"lam=0.0", "lam=0.5"}
    assert all(row[-3] == "3" for row in rows)  # n
    assert not [p for p in sweep.rglob("*") if p.is_dir() and not any(p.iterdir())]
