"""Task settings are checked before anything runs: a bad value, a key the task does not read and
a key no config has each end `nclb run` (and a sweep) with one line naming the key."""

from __future__ import annotations

import pytest
from tests.test_user_errors import one_line_error

from nclb.config.compose import compose
from nclb.config.paths import group_options
from nclb.errors import UserError
from nclb.tasks.build import build_task

ORACLE = ["model=oracle", "task=toy", "limit=3"]


def nothing_ran(out_dir) -> bool:
    """No run folder holds a record or a summary."""
    return not list(out_dir.rglob("records.jsonl")) and not list(out_dir.rglob("summary.json"))


@pytest.mark.parametrize("task", group_options("task"))
def test_every_shipped_task_config_builds_and_every_key_is_read(task):
    cfg = compose("config", [f"task={task}"])["task"]
    build_task(dict(cfg))
    with pytest.raises(UserError, match="nosuchkey"):
        build_task({**cfg, "nosuchkey": 1})


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["task=arith", "task.value_min=5"], "value_min"),  # arith values have two digits
        (["task.stop=x"], "task.stop is not a config key"),
        (["task.nosuchkey=1"], "task.nosuchkey is not a config key"),
        (["+task.nosuchkey=1"], "nosuchkey"),
        (["-m", "task=arith", "task.value_min=10,5"], "value_min"),
        (["task.value_min=60"], "value_min"),  # chain (the default): start above value_max
        (["-m", "seed=0,1", "task.stop=x"], "task.stop is not a config key"),
        (["-m", "seed=0,1", "task.nosuchkey=1"], "task.nosuchkey is not a config key"),
    ],
)
def test_a_bad_task_key_is_one_line_before_any_example_runs(capsys, tmp_path, args, needle):
    line = one_line_error(capsys, ["run", "limit=2", f"out_dir={tmp_path}", *args])
    assert needle in line
    assert nothing_ran(tmp_path)


@pytest.mark.parametrize("sweep", [False, True])
def test_a_key_the_task_does_not_read_is_one_line(capsys, tmp_path, sweep):
    args = ["-m", "seed=0,1"] if sweep else []
    line = one_line_error(capsys, ["run", *ORACLE, f"out_dir={tmp_path}", *args, "+task.stop=[x]"])
    assert "task.stop is not a key of task=toy" in line
    assert nothing_ran(tmp_path)


@pytest.mark.parametrize("task", ["math", "humaneval", "sudoku"])
def test_keys_these_tasks_never_read_are_not_config_keys(capsys, tmp_path, task):
    line = one_line_error(
        capsys, ["run", "model=reference", f"task={task}", f"out_dir={tmp_path}", "task.split=x"]
    )
    assert "task.split is not a config key" in line
