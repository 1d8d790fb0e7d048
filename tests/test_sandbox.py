"""Untrusted programs fail safely in the sandbox, in both modes, and leave the caller unharmed.

Hostile programs only ever aim at decoys made here (a temp folder with a file, a `sleep` process
standing in for the runner, a local listening socket); the caller checks the decoys afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from nclb.tasks import syscall_fence
from nclb.tasks.sandbox import (
    GUARDS_ONLY_GAPS,
    Limits,
    WorkerPool,
    guards_only_warning,
    namespaces_available,
    resolve_mode,
    run_many,
    run_python,
)

MODES = [
    pytest.param(False, id="guards-only"),
    pytest.param(
        True,
        id="namespaces",
        marks=pytest.mark.skipif(not namespaces_available(), reason="no user namespaces"),
    ),
]
FAST = Limits(timeout_s=3.0, memory_mb=512)
# Only `nobody` (root runner) or the namespaces stop a program that reads through the raw FileIO
# type (writes are refused by the kernel in both modes).
FILEIO_CONTAINED = os.geteuid() == 0
WRONG_BODY = "def add(a, b):\n    return a - b\n"
CHECK = "\nassert add(2, 3) == 5\n"


@pytest.fixture(scope="module", params=MODES)
def pool(request):
    """A warm two-worker pool per mode, shared by the tests of this module."""
    workers = WorkerPool(2, resolve_mode(request.param))
    yield workers
    workers.close()


@pytest.fixture
def victim(tmp_path):
    """A folder outside the sandbox that hostile code aims at."""
    (tmp_path / "keep.txt").write_text("precious")
    return tmp_path


@pytest.fixture
def decoy_runner():
    """A process standing in for the runner, for programs that try to kill it."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def assert_unharmed(victim: Path) -> None:
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert (victim / "keep.txt").read_text() == "precious"


WRONG_BODY_ATTACKS = [
    "exit()",
    "import sys\nsys.exit(0)",
    "raise SystemExit(0)",
    "import os\nos._exit(0)",
    "import posix\nposix._exit(0)",
    "import os\nos.execv('/bin/true', ['true'])",
    "import posix\nposix.execv('/bin/true', ['true'])",
    # the old harness kept its pass marker in __main__
    "import __main__\nfor k in ('nonce', 'report', '_write', '_exit'):\n"
    "    f = getattr(__main__, k, None)\n    if callable(f): f(0)\n",
    # anything the harness frames hold
    "import sys\nf = sys._getframe()\nwhile f is not None:\n"
    "    for k, v in list(f.f_locals.items()) + list(f.f_globals.items()):\n"
    "        if k in ('_exit', 'nonce') and callable(v): v(0)\n"
    "        if k == '_SystemExit': raise v(0)\n"
    "    f = f.f_back\n",
    # jump over the test with a trace function
    "import sys\nsys.settrace(lambda *a: None)",
    # an exception whose message raises SystemExit(0) when shown
    "class E(Exception):\n    def __str__(self):\n        raise SystemExit(0)\nraise E()",
    "import builtins\nbuiltins.SystemExit = type('X', (BaseException,), {})\nraise SystemExit",
    "import atexit, sys\natexit.register(sys.exit, 0)",
    "import _imp, importlib.machinery as m\n"
    "p = _imp.create_builtin(m.ModuleSpec('posix', m.BuiltinImporter))\np._exit(0)",
]


FILE_ATTACKS = [
    "import os\nos.system('rm -rf {d}')",
    "import posix\nposix.system(b'rm -rf {d}')",
    "import posix\nposix.unlink('{d}/keep.txt')",
    "import posix\nposix.rename('{d}/keep.txt', '{d}/moved.txt')",
    "import shutil\nshutil.rmtree('{d}')",
    "import subprocess\nsubprocess.run(['rm', '-rf', '{d}'])",
    "import ctypes\nctypes.CDLL(None).system(b'rm -rf {d}')",
    "open('{d}/keep.txt', 'w').write('gone')",
    "open('{d}/new.txt', 'x')",
    "import io\nio.open('{d}/keep.txt', 'a').write('!')",
    "import pathlib\npathlib.Path('{d}/keep.txt').write_text('gone')",
    "import os\nos.truncate('{d}/keep.txt', 0)",
]


# Routes to the functions the guards remove, beyond `os` and `posix` themselves.
ROUTES = (
    "import os, sys\n"
    "def guarded(name):\n"
    "    sets = (os.supports_fd, os.supports_dir_fd, os.supports_follow_symlinks,\n"
    "            os.supports_effective_ids)\n"
    "    places = [g for s in sets for g in s] + [getattr(os, name, None)]\n"
    "    for module in list(sys.modules.values()):\n"
    "        for value in list(getattr(module, '__dict__', {}).values()):\n"
    "            places.append(value)\n"
    "            if isinstance(value, (set, frozenset, list, tuple)):\n"
    "                places.extend(value)\n"
    "            elif isinstance(value, dict):\n"
    "                places.extend(value.values())\n"
    "    try:\n"
    "        import gc\n"
    "        places += [r for o in gc.get_objects() for r in gc.get_referents(o)]\n"
    "    except (ImportError, AttributeError):  # the guards keep gc out of reach\n"
    "        pass\n"
    "    for found in places:\n"
    "        if type(found) is type(len) and found.__name__ == name:\n"
    "            return found\n"
    "    raise LookupError(name)\n"
)
# Programs that exec something exiting 0 (a stand-in for the tests) after a wrong body.
EXEC_ATTACKS = [
    "guarded('execve')('/bin/true', ['true'], {{}})",
    "guarded('execve')('/bin/sh', ['sh', '-c', 'exit 0'], {{}})",
    "guarded('execve')('/bin/sh', ['sh', '-c', 'touch {d}/exec.txt; rm -f {d}/keep.txt'], {{}})",
    "import sys\nguarded('execve')(sys.executable, [sys.executable, '-c', 'import socket; "
    'socket.create_connection(("127.0.0.1", {p}), timeout=1)\'], {{}})',
    "guarded('execve')('/usr/bin/python3', ['python3', '-c', 'import socket; "
    'socket.create_connection(("127.0.0.1", {p}), timeout=1)\'], {{}})',
]
PASS_REPORT = b"nclb-sandbox: the tests ran to their end\n"
# Programs that write what a passing harness writes, on every descriptor, then leave.
FORGED_REPORTS = [
    f"import os\nfor fd in range(64):\n    try: os.write(fd, {PASS_REPORT!r})\n"
    "    except OSError: pass\n" + ending
    for ending in ("", "raise SystemExit(0)", "guarded('_exit')(0)", "os.closerange(0, 64)")
]
# Writes in world-writable folders; {f} is a fresh name in each folder.
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
SHARED_FOLDER_ATTACKS = [
    "open('{f}', 'w').write('x')",
    "import sys\ntype(sys.stdin.buffer.raw)('{f}', 'w').write(b'x')",
    "import os\nos.close(guarded('open')('{f}', os.O_CREAT | os.O_WRONLY))",
    "guarded('mkdir')('{f}')",
    "guarded('mkfifo')('{f}')",
    "guarded('symlink')('/etc/passwd', '{f}')",
    "import os\nos.mknod('{f}')",
]
# Return values that compare equal to anything.
ALWAYS_EQUAL = [
    "class E:\n    def __eq__(self, other): return True\n",
    "class E(int):\n    def __eq__(self, other): return True\n",
    "class E(list):\n    def __eq__(self, other): return True\n",
]
CHECK_FUNCTION = "\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n"


def hostile(attack: str) -> str:
    """A wrong function body, the attack, then the test that the body fails."""
    return WRONG_BODY + attack + CHECK


def hostile_check(attack: str) -> str:
    """HumanEval's shape: a wrong body, the attack (with ROUTES), `def check`, `check(add)`."""
    return WRONG_BODY + ROUTES + attack + "\n" + CHECK_FUNCTION


def run(pool: WorkerPool, code: str, limits: Limits = FAST):
    result = pool.run(code, limits)
    assert result.mode == pool.mode
    return result


def test_passing_and_failing_programs(pool):
    assert run(pool, "def add(a, b):\n    return a + b\n" + CHECK).passed
    result = run(pool, WRONG_BODY + CHECK)
    assert result.status == "failed" and "AssertionError" in result.detail


def test_infinite_loop_times_out(pool):
    start = time.monotonic()
    result = run(pool, "while True:\n    pass\n", Limits(timeout_s=1.0))
    assert result.status == "timeout" and time.monotonic() - start < 10


@pytest.mark.parametrize("attack", WRONG_BODY_ATTACKS)
def test_a_wrong_body_never_passes(pool, attack):
    assert not run(pool, hostile(attack)).passed


@pytest.mark.parametrize("attack", FILE_ATTACKS)
def test_files_outside_stay_intact(pool, victim, attack):
    assert not run(pool, hostile(attack.format(d=victim))).passed
    assert_unharmed(victim)


@pytest.mark.parametrize("attack", WRONG_BODY_ATTACKS + FORGED_REPORTS)
def test_a_wrong_body_never_passes_humaneval_shape(pool, attack):
    assert not run(pool, hostile_check(attack)).passed


@pytest.mark.parametrize("attack", FILE_ATTACKS)
def test_files_outside_stay_intact_humaneval_shape(pool, victim, attack):
    assert not run(pool, hostile_check(attack.format(d=victim))).passed
    assert_unharmed(victim)


def test_guarded_functions_have_no_other_route(pool):
    names = ("execve", "execv", "open", "rename", "replace", "unlink", "remove", "mkdir", "rmdir")
    names += ("chmod", "chown", "truncate", "link", "symlink", "mknod", "mkfifo", "utime")
    names += ("chdir", "_exit", "fork", "kill", "killpg", "system", "posix_spawn", "setsid")
    probe = "".join(
        f"try:\n    guarded({n!r})\n    raise AssertionError({n!r})\nexcept LookupError:\n    pass\n"
        for n in names
    )
    result = run(pool, ROUTES + probe, Limits(timeout_s=20.0, memory_mb=512))
    assert result.passed, result.detail


@pytest.mark.parametrize("attack", EXEC_ATTACKS)
def test_an_exec_never_stands_in_for_the_tests(pool, victim, attack):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        code = attack.format(d=victim, p=server.getsockname()[1])
        assert not run(pool, hostile_check(code)).passed
        with pytest.raises(TimeoutError):
            server.accept()[0].close()
    assert_unharmed(victim)


@pytest.mark.parametrize("attack", SHARED_FOLDER_ATTACKS)
def test_world_writable_folders_get_no_files(pool, attack):
    names = [Path(folder) / f"nclb-sandbox-probe-{uuid.uuid4().hex}" for folder in WORLD_WRITABLE]
    for name in names:
        assert not run(pool, hostile_check(attack.format(f=name))).passed
    assert [name for name in names if name.exists() or name.is_symlink()] == []


@pytest.mark.parametrize("always_equal", ALWAYS_EQUAL)
def test_a_result_that_equals_anything_fails(pool, always_equal):
    for returned in ("E()", "[E()]", "(1, {'k': E()})"):
        body = always_equal + f"def add(a, b):\n    return {returned}\n"
        result = run(pool, body + CHECK_FUNCTION.replace("== 5", "== E.__bases__[0]()"))
        assert result.status == "failed" and "not plain data" in result.detail
    # even when the tests swallow the error
    body = always_equal + "def add(a, b):\n    return E()\n"
    tests = "\ndef check(candidate):\n    try:\n        candidate(2, 3)\n    except Exception:\n"
    result = run(pool, body + tests + "        pass\n\ncheck(add)\n")
    assert result.status == "failed" and "not plain data" in result.detail


def test_plain_results_of_every_builtin_kind_pass(pool):
    body = (
        "import collections\n"
        "def f(kind):\n"
        "    return {'list': [1, 'a'], 'tuple': (1.5, None), 'dict': {'k': {1, 2}},\n"
        "            'frozenset': frozenset({b'x'}), 'od': collections.OrderedDict(a=1),\n"
        "            'dd': collections.defaultdict(int, a=1), 'bool': True, 'complex': 1j}[kind]\n"
    )
    tests = (
        "\ndef check(candidate):\n"
        "    assert candidate('list') == [1, 'a'] and candidate('tuple') == (1.5, None)\n"
        "    assert candidate('dict') == {'k': {1, 2}} and candidate('bool') is True\n"
        "    assert candidate('frozenset') == {b'x'} and candidate('od') == {'a': 1}\n"
        "    assert candidate('dd') == {'a': 1} and candidate('complex') == 1j\n"
        "\ncheck(f)\n"
    )
    result = run(pool, body + tests)
    assert result.passed, result.detail


def test_rewriting_the_harness_functions_forges_nothing(pool):
    # every function and module the harness's globals hold turned into a no-op
    attack = (
        "import sys\n"
        "noop = lambda *args, **kwargs: None\n"
        "fake = type('Fake', (), {'__getattr__': lambda self, name: lambda *a, **k: noop})()\n"
        "frame = sys._getframe()\n"
        "while frame is not None:\n"
        "    g = frame.f_globals\n"
        "    if g.get('__name__') == '__main__':\n"
        "        for key, value in list(g.items()):\n"
        "            if hasattr(value, '__code__'):\n"
        "                value.__code__ = noop.__code__\n"
        "            elif type(value) is type(sys) and key != '__builtins__':\n"
        "                g[key] = fake\n"
        "    frame = frame.f_back\n"
    )
    assert not run(pool, WRONG_BODY + attack + CHECK_FUNCTION).passed


def test_the_kernel_fence_refuses_exec_sockets_and_writes(tmp_path):
    probe = (
        "import json, os, socket, sys\n"
        "def refused(fn, *args):\n"
        "    try:\n        fn(*args)\n    except PermissionError:\n        return True\n"
        "    return False\n"
        "target = sys.argv[1]\n"
        "out = {'exec': refused(os.execv, '/bin/true', ['true']),\n"
        "       'python3': refused(os.execv, sys.executable, [sys.executable, '-c', '1']),\n"
        "       'socket': refused(socket.socket), 'unix': refused(socket.socket, socket.AF_UNIX),\n"
        "       'create': refused(open, target + '/new', 'w'),\n"
        "       'append': refused(open, target + '/keep.txt', 'a'),\n"
        "       'mkdir': refused(os.mkdir, target + '/d'),\n"
        "       'unlink': refused(os.unlink, target + '/keep.txt'),\n"
        "       'rename': refused(os.rename, target + '/keep.txt', target + '/moved'),\n"
        "       'chmod': refused(os.chmod, target + '/keep.txt', 0o777),\n"
        "       'read': open(target + '/keep.txt').read() == 'precious'}\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    os._exit(7)\n"
        "out['fork'] = os.waitpid(pid, 0)[1] >> 8 == 7\n"
        "print(json.dumps(out))\n"
    )
    (tmp_path / "keep.txt").write_text("precious")
    launcher = syscall_fence.__file__
    cmd = [sys.executable, "-I", "-S", launcher, sys.executable, "-I", "-c", probe, str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome == dict.fromkeys(outcome, True) and len(outcome) == 12
    assert_unharmed(tmp_path)


def test_a_worker_that_cannot_start_fenced_fails_every_program():
    cmd = [sys.executable, "-I", "-S", syscall_fence.__file__, "/nonexistent/python"]
    jobs = "".join(json.dumps({"size": len(c)}) + "\n" + c for c in ("x = 1", "assert True"))
    done = subprocess.run(cmd, input=jobs, capture_output=True, text=True, timeout=60)
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["status"] for r in replies] == ["failed", "failed"]
    assert replies[0]["detail"].startswith("sandbox set-up failed: exec of the sandbox worker")


def test_the_kernel_fence_knows_its_architectures():
    assert len(syscall_fence.program(os.uname().machine, 2**40 + 5)) % 8 == 0
    with pytest.raises(ValueError, match="no seccomp table"):
        syscall_fence.program("sparc", 0)


def test_raw_fileio_cannot_write_outside(pool, victim):
    attack = f"import sys\ntype(sys.stdin.buffer.raw)('{victim}/keep.txt', 'w').write(b'gone')"
    assert not run(pool, hostile(attack)).passed
    assert_unharmed(victim)


def test_raw_socket_does_not_connect(pool):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        for attack in (
            "import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {p}))",
            "import socket\nsocket.create_connection(('127.0.0.1', {p}), timeout=1)",
        ):
            assert not run(pool, hostile(attack.format(p=port))).passed
            with pytest.raises(TimeoutError):
                server.accept()[0].close()


def test_runner_environment_is_not_read(pool, monkeypatch):
    monkeypatch.setenv("NCLB_DECOY_SECRET", "s3cret")
    me = os.getpid()
    for attack in (
        "import os\nassert 's3cret' in open(f'/proc/{{os.getppid()}}/environ').read()",
        "assert 's3cret' in open('/proc/{pid}/environ').read()",
        "import os\nassert 's3cret' in str(os.environ)",
    ):
        assert not run(pool, attack.format(pid=me)).passed
    if FILEIO_CONTAINED:
        raw = "import sys\nassert b's3cret' in type(sys.stdin.buffer.raw)('/proc/{pid}/environ').read()"
        assert not run(pool, raw.format(pid=me)).passed


def test_the_runner_is_not_killed(pool, decoy_runner):
    for attack in (
        "import os\nos.kill({pid}, 9)",
        "import posix\nposix.kill({pid}, 9)",
        "import os\nos.killpg({pid}, 9)",
        "import signal\nsignal.pidfd_send_signal(0, 9)",
        "import resource\nresource.prlimit({pid}, resource.RLIMIT_NOFILE, (0, 0))",
        "import posix\nposix.kill(posix.getppid(), 9)",
    ):
        assert not run(pool, hostile(attack.format(pid=decoy_runner.pid))).passed
    assert decoy_runner.poll() is None
    assert run(pool, "def add(a, b):\n    return a + b\n" + CHECK).passed  # workers still serve


def sandbox_processes(before: set[int]) -> list[int]:
    """Processes started since `before` whose command line names a sandbox folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in before:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"nclb-sandbox-" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("ns", MODES)
def test_no_process_outlives_the_check(ns):
    before = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    for attack in (
        "import os\nfor _ in range(60):\n    os.fork()\nimport time\ntime.sleep(30)",
        "import posix\nfor _ in range(60):\n    posix.fork()\nimport time\ntime.sleep(30)",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()",
        "import os\nos.execv('/bin/sleep', ['sleep', '30'])",
        "import os\n[g for g in os.supports_fd if g.__name__ == 'execve'][0]"
        "('/bin/sleep', ['sleep', '30'], {})",
        ROUTES + "guarded('execve')('/bin/sh', ['sh', '-c', 'sleep 30 & sleep 30'], {})",
    ):
        assert not run_python(hostile(attack), Limits(timeout_s=2.0), ns).passed
    time.sleep(0.2)
    assert sandbox_processes(before) == []


def test_huge_allocation_fails(pool):
    result = run(pool, "x = bytearray(64 * 2**30)\n")
    assert result.status == "failed" and "MemoryError" in result.detail


def test_modes_are_named():
    assert resolve_mode(False) == "guards-only"
    warning = guards_only_warning()
    assert "guards-only" in warning and all(gap in warning for gap in GUARDS_ONLY_GAPS)
    assert run_python("x = 1", FAST, False).mode == "guards-only"


def test_run_many_keeps_order():
    codes = ["assert True", "assert False", "while True: pass", "x = 1"]
    results = run_many(codes, Limits(timeout_s=2.0), workers=2)
    assert [r.status for r in results] == ["passed", "failed", "timeout", "passed"]
    assert {r.mode for r in results} == {resolve_mode()}
