"""Untrusted programs fail safely in the sandbox and leave the caller unharmed."""

from __future__ import annotations

import os
import time

import pytest

from nclb.tasks.sandbox import Limits, namespaces_available, run_many, run_python

MODES = [
    pytest.param(False, id="guards-only"),
    pytest.param(
        True,
        id="namespaces",
        marks=pytest.mark.skipif(not namespaces_available(), reason="no user namespaces"),
    ),
]
FAST = Limits(timeout_s=3.0, memory_mb=512)


@pytest.fixture
def victim(tmp_path):
    """A directory outside the sandbox that hostile code aims at."""
    (tmp_path / "keep.txt").write_text("precious")
    return tmp_path


def assert_unharmed(victim) -> None:
    assert (victim / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("ns", MODES)
def test_passing_and_failing_programs(ns):
    assert run_python("def f(x):\n    return 2 * x\nassert f(2) == 4\n", FAST, ns).passed
    result = run_python("assert 1 + 1 == 3", FAST, ns)
    assert result.status == "failed" and "AssertionError" in result.detail


@pytest.mark.parametrize("ns", MODES)
def test_infinite_loop_times_out(ns):
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", Limits(timeout_s=1.0), ns)
    assert result.status == "timeout" and time.monotonic() - start < 10


@pytest.mark.parametrize("ns", MODES)
@pytest.mark.parametrize(
    "attack",
    [
        "import os\nos.system('rm -rf {d}')",
        "import shutil\nshutil.rmtree('{d}')",
        "import subprocess\nsubprocess.run(['rm', '-rf', '{d}'])",
        "import os\nos.remove('{d}/keep.txt')",
    ],
)
def test_file_deletion_fails(ns, victim, attack):
    result = run_python(attack.format(d=victim), FAST, ns)
    assert not result.passed
    assert_unharmed(victim)


@pytest.mark.skipif(not namespaces_available(), reason="no user namespaces")
def test_read_only_filesystem_stops_guard_bypass(victim):
    attack = f"import ctypes\nctypes.CDLL(None).system(b'rm -rf {victim}')\nopen('{victim}/x', 'w')"
    assert not run_python(attack, FAST, True).passed
    assert_unharmed(victim)
    assert not (victim / "x").exists()


@pytest.mark.parametrize("ns", MODES)
def test_fork_attempt_fails(ns):
    parent = os.getpid()
    result = run_python("import os\nwhile True:\n    os.fork()\n", FAST, ns)
    assert not result.passed and os.getpid() == parent


@pytest.mark.parametrize("ns", MODES)
def test_huge_allocation_fails(ns):
    result = run_python("x = bytearray(64 * 2**30)\n", FAST, ns)
    assert result.status == "failed" and "MemoryError" in result.detail


@pytest.mark.parametrize("ns", MODES)
@pytest.mark.parametrize("code", ["exit()", "import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_exit_counts_as_failure(ns, code):
    assert not run_python(code, FAST, ns).passed


@pytest.mark.parametrize("ns", MODES)
def test_network_blocked(ns):
    code = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n"
    assert not run_python(code, FAST, ns).passed


def test_run_many_keeps_order():
    codes = ["assert True", "assert False", "while True: pass", "x = 1"]
    statuses = [r.status for r in run_many(codes, Limits(timeout_s=2.0), workers=2)]
    assert statuses == ["passed", "failed", "timeout", "passed"]
