"""Tables and figures from committed code only: uncommitted code is refused for results/ and
stamped elsewhere; results/ or README changes do not count as uncommitted code."""

from __future__ import annotations

import subprocess

import pytest

from nclb.errors import UserError
from nclb.runs.revision import uncommitted_code
from nclb.tables.committed import committed_code_stamp


def git(root, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path):
    """A git checkout with committed src/, configs/ and results/."""
    for path in ("src/a.py", "configs/c.yaml", "results/t.md", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("v1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_only_code_changes_count(repo):
    assert uncommitted_code(repo) == []
    (repo / "results" / "t.md").write_text("v2\n")
    (repo / "README.md").write_text("v2\n")
    assert uncommitted_code(repo) == []
    (repo / "src" / "a.py").write_text("v2\n")
    (repo / "configs" / "new.yaml").write_text("x: 1\n")  # untracked code counts too
    assert sorted(uncommitted_code(repo)) == ["configs/new.yaml", "src/a.py"]


def test_outside_a_checkout_nothing_is_known(tmp_path_factory):
    assert uncommitted_code(tmp_path_factory.mktemp("plain")) is None


def test_results_from_uncommitted_code_refused_or_stamped(repo, tmp_path_factory, capsys):
    assert committed_code_stamp(repo / "results", False, root=repo) == ""
    (repo / "src" / "a.py").write_text("v2\n")
    with pytest.raises(UserError, match=r"src/a\.py have uncommitted changes; commit them"):
        committed_code_stamp(repo / "results", False, root=repo)
    assert capsys.readouterr().err == ""
    stamp = committed_code_stamp(repo / "results", True, root=repo)
    assert stamp == "UNCOMMITTED CODE: src/a.py"
    assert "WARNING: src/a.py have uncommitted changes" in capsys.readouterr().err
    elsewhere = tmp_path_factory.mktemp("out")
    assert committed_code_stamp(elsewhere, False, root=repo) == stamp
    assert "WARNING" in capsys.readouterr().err
