"""Run untrusted Python (model completions + tests) in fenced-in child processes.

A `Worker` is a warm `python -I -S` process (the "zygote") that has already imported the standard
modules programs use; it forks one child per program, so a program costs a fork, not an
interpreter start. The zygote starts under a seccomp filter (`nclb.tasks.syscall_fence`) that
holds for it and every process it forks: no exec, no sockets, no file opened for writing,
created, renamed, removed or changed, no tracing of other processes. Each child:
- starts its own session and process group, in the worker's working folder (which it cannot
  write, like every other folder);
- gets an address-space cap (RLIMIT_AS), a file-size cap, no core dumps, and /dev/null as its
  standard streams;
- has Python-level guards applied before the program runs: the `posix`/`os` calls that exit,
  exec, fork, spawn, kill, delete, rename, create or change files are removed, with every other
  route to them (`os.supports_fd`, `os.supports_dir_fd`, ..., copies kept by other modules);
  `open` is read-only and refuses other processes' /proc entries; `resource.prlimit`, the signal
  senders and the signal-handler setters are removed; the import machinery can no longer load C
  extensions or fresh builtin modules (so `ctypes`, `_socket`, `_posixsubprocess`, `mmap`, `gc`
  and a second copy of `posix` are out of reach); tracing and monitoring hooks are removed (no
  jumping over the tests);
- is killed with its whole process group at the timeout (and its stray processes after it).

Two modes; the one that ran is in every `Result` (`mode`):
- "namespaces" (where unprivileged user namespaces work): the zygote runs in its own user,
  network, mount and PID namespaces (no network, every mount read-only, a private tmpfs as its
  working folder, its own /proc, no capabilities), and is the namespace's init: after each
  program every other process in the namespace is killed, and the program cannot signal it.
- "guards-only": the filter and the Python guards above, plus RLIMIT_NPROC=0 (no fork) and, when
  the runner is root, the child drops to the `nobody` user. NOT contained in this mode: a
  program that reaches the raw `_io.FileIO` type can read files the runner's user can read;
  nothing stops CPU-bound side channels. `guards_only_warning` says so.

The verdict: a program passes only when the zygote reads, on a pipe whose only write end the
child holds (close-on-exec, and exec is refused anyway), exactly the report the harness writes
after the program returned, and the child then exits with status 0. A program that ends with
`check(NAME)` after a plain top-level `def check` (HumanEval's form) has that call made by the
harness, with the tests' own compiled `check` and with every value the function returns checked
to be plain data (instances of built-in types, so none can compare equal to anything). Every way
to stop earlier, `exit()`, `os._exit`, exec, exceptions, kills, writing the report early, counts
as a failure.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from nclb.tasks import syscall_fence

MODES = ("namespaces", "guards-only")
GUARDS_ONLY_GAPS = (
    "files the runner's user can read (a program reaching the raw FileIO type), unless the "
    "runner is root (the program then runs as `nobody`)",
    "CPU, disk-read and timing side effects",
)

# The zygote. argv: mode, drop-privileges flag ("1"/"0"), the working folder of its children.
# Protocol on stdin: a JSON header line {"size", "timeout_s", "memory_mb"} then `size` bytes of
# code; on stdout: one JSON line {"status", "detail"} per program.
_ZYGOTE = r"""
import ast, builtins, errno, json, os, resource, select, shutil, signal, sys, types
import bisect, cmath, collections, copy, datetime, decimal, fractions, functools, hashlib
import heapq, itertools, math, numbers, operator, random, re, statistics, string, typing
import array, calendar, dataclasses, enum, json, struct, textwrap, unicodedata

MODE, DROP, BASE = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
NAMESPACES = MODE == "namespaces"
NOBODY = 65534
_POSIX_BLOCK = (
    "_exit", "abort", "chdir", "chmod", "chown", "chroot", "execv", "execve", "fchdir", "fchmod",
    "fchown", "fexecve", "fork", "forkpty", "ftruncate", "initgroups", "kill", "killpg", "lchmod",
    "lchown", "link", "mkdir", "mkfifo", "mknod", "open", "openpty", "pidfd_open",
    "posix_fallocate", "posix_spawn", "posix_spawnp", "putenv", "register_at_fork", "remove",
    "removexattr", "rename", "replace", "rmdir", "sched_setaffinity", "sched_setparam",
    "sched_setscheduler", "setegid", "seteuid", "setgid", "setgroups", "setpgid", "setpgrp",
    "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setsid", "setuid",
    "setxattr", "symlink", "system", "truncate", "unlink", "unsetenv", "utime", "vfork",
)
_OS_BLOCK = (
    "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "makedirs", "popen",
    "removedirs", "renames", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
    "spawnvp", "spawnvpe",
)


_SIGNAL_BLOCK = (
    "alarm", "pidfd_send_signal", "pthread_kill", "set_wakeup_fd", "setitimer", "siginterrupt",
    "signal",
)
_SYS_BLOCK = (
    "_setprofileallthreads", "_settraceallthreads", "monitoring", "remote_exec", "setprofile",
    "settrace",
)
_PASSED = b"nclb-sandbox: the tests ran to their end\n"
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by Python code
_type_flags = type.__dict__["__flags__"].__get__
_type_name = type.__dict__["__name__"].__get__


def _guard(own_pid):
    import _imp, _io, _signal, builtins, io, posix
    blocked = [
        module.__dict__[name]
        for module in (posix, os)
        for name in _POSIX_BLOCK + _OS_BLOCK
        if name in module.__dict__
    ]
    for module in (posix, os):
        for name in _POSIX_BLOCK + _OS_BLOCK:
            if name in module.__dict__:
                delattr(module, name)
    for module in (signal, _signal):  # no handlers: nothing can interrupt the harness
        for name in _SIGNAL_BLOCK:
            if name in module.__dict__:
                delattr(module, name)
    del resource.prlimit
    for name in ("create_builtin", "create_dynamic", "exec_builtin", "exec_dynamic"):
        delattr(_imp, name)
    for name in _SYS_BLOCK:  # no tracing, monitoring or jumping over the tests
        if hasattr(sys, name):
            delattr(sys, name)
    real_open = _io.open
    own = ("/proc/self", "/proc/thread-self", "/proc/%d" % own_pid)

    def read_only_open(file, mode="r", *args, **kwargs):
        if not isinstance(mode, str) or set(mode) & set("wax+"):
            raise PermissionError("the nclb sandbox allows reading files only")
        if isinstance(file, int):
            raise PermissionError("the nclb sandbox does not open file descriptors")
        path = os.path.abspath(os.fsdecode(file))
        if path.startswith("/proc/") and not any(
            path == p or path.startswith(p + "/") for p in own
        ):
            raise PermissionError("the nclb sandbox hides other processes")
        return real_open(file, mode, *args, **kwargs)

    builtins.open = io.open = _io.open = read_only_open
    # Other routes to the same functions: copies kept by modules (`tokenize._builtin_open`) and
    # sets of them (`os.supports_fd`, `os.supports_dir_fd`, ...).
    blocked_ids = {id(f) for f in blocked}
    for module in list(sys.modules.values()):
        held = getattr(module, "__dict__", None)
        for name, value in list(held.items()) if isinstance(held, dict) else ():
            if value is real_open:
                held[name] = read_only_open
            elif id(value) in blocked_ids:
                del held[name]
            elif isinstance(value, set):
                value.difference_update(blocked)


def _plain(value, rejected):
    # A copy of `value` made of built-in types only (a program cannot change how those compare).
    kind = type(value)
    if type(kind) is not type or _type_flags(kind) & _HEAP_TYPE:
        message = "the function returned a %s, not plain data (built-in types only)" % (
            _type_name(kind),
        )
        rejected.append(message)
        raise TypeError(message)
    if kind is list:
        return [_plain(item, rejected) for item in value]
    if kind is tuple:
        return tuple([_plain(item, rejected) for item in value])
    if kind is set or kind is frozenset:
        return kind([_plain(item, rejected) for item in value])
    if kind is dict:
        return {_plain(k, rejected): _plain(v, rejected) for k, v in value.items()}
    if issubclass(kind, dict):
        for item in dict.items(value):
            _plain(item, rejected)
    elif kind is collections.deque:
        for item in value:
            _plain(item, rejected)
    return value


def _plain_calls(function, rejected):
    def candidate(*args, **kwargs):
        return _plain(function(*args, **kwargs), rejected)

    return candidate


def _compile(code):
    # (module code, check code, NAME): a program whose last statement is `check(NAME)`, with a
    # plain top-level `def check` before it, has that call made by the harness (_child), with the
    # compiled code of that `def` (not whatever the name `check` holds by then). Otherwise
    # (module code, None, None): the program runs as written.
    tree = ast.parse(code, "<program>")
    last = tree.body[-1] if tree.body else None
    if not (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and isinstance(last.value.func, ast.Name)
        and last.value.func.id == "check"
        and len(last.value.args) == 1
        and isinstance(last.value.args[0], ast.Name)
        and not last.value.keywords
    ):
        return compile(tree, "<program>", "exec"), None, None
    defs = [n for n in tree.body[:-1] if isinstance(n, ast.FunctionDef) and n.name == "check"]
    plain_def = defs and not (
        defs[-1].decorator_list or defs[-1].args.defaults or any(defs[-1].args.kw_defaults)
    )
    if not plain_def:
        return compile(tree, "<program>", "exec"), None, None
    tree.body.pop()
    body = compile(tree, "<program>", "exec")
    check_code = next(
        c
        for c in body.co_consts
        if isinstance(c, types.CodeType)
        and c.co_name == "check"
        and c.co_firstlineno == defs[-1].lineno
    )
    return body, check_code, last.value.args[0].id


def _child(code, report, memory_mb):
    # Runs in the forked child; reports a pass only by writing _PASSED after the tests returned.
    # Once the program has run, this frame calls only what its locals held before (a program
    # cannot rebind them) and C functions; Python functions it calls can be altered.
    _SystemExit, _BaseException, _write, _str = SystemExit, BaseException, os.write, str
    _NameError, _TypeError, _function = NameError, TypeError, types.FunctionType
    _builtins = builtins.__dict__
    try:
        os.setsid()
        os.chdir(BASE)
        null = os.dup(2)  # the worker's stderr: /dev/null, read-write (no file opens for writing)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, report)
        os.closerange(report + 1, 65536)
        cap = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**24, 2**24))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if DROP:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        if not NAMESPACES:
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        program, check_code, name = _compile(code)
        _guard(os.getpid())
    except _BaseException as err:
        _write(report, ("sandbox set-up failed: %r" % (err,))[:500].encode())
        raise _SystemExit(2)
    try:
        namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
        exec(program, namespace)
        if check_code is not None:
            if name in namespace:
                function = namespace[name]
            elif name in _builtins:
                function = _builtins[name]
            else:
                raise _NameError("name %r is not defined" % name)
            rejected = []
            _function(check_code, namespace, "check")(_plain_calls(function, rejected))
            if rejected:
                raise _TypeError(rejected[0])
    except _BaseException as err:
        try:
            text = "failed: %s: %s" % (type(err).__name__, _str(err))
        except _BaseException:
            text = "failed: an exception that cannot be shown"
        try:
            _write(report, text[:500].encode(errors="replace"))
        except _BaseException:
            pass
        raise _SystemExit(1)
    _write(report, _PASSED)
    raise _SystemExit(0)


def _kill_strays(pid):
    if NAMESPACES:  # the namespace's init: everything else in it goes
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _drain(fd):
    # Everything written to the report pipe (every writer is dead by now), at most 1 MiB.
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < 2**20:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _run(job, code):
    read_end, write_end = os.pipe()  # close-on-exec; the child's end is its only report channel
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(code, write_end, job["memory_mb"])
    os.close(write_end)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], job["timeout_s"])
    timed_out = not ready
    _kill_strays(pid)  # before reaping: the group id cannot be reused while the child is a zombie
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    _reap()
    report = _drain(read_end)
    os.close(read_end)
    if timed_out:
        return "timeout", "killed after %g s" % job["timeout_s"]
    exited_zero = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    if exited_zero and report == _PASSED:
        return "passed", ""
    detail = report.replace(_PASSED, b"")[:600].decode(errors="replace")
    if exited_zero:
        return "failed", detail or "exited without the harness's report that the tests ran"
    if os.WIFSIGNALED(status):
        return "failed", detail or "killed by signal %d" % os.WTERMSIG(status)
    return "failed", detail or "exit status %d" % os.WEXITSTATUS(status)


def _serve():
    stdin, stdout = sys.stdin.buffer, sys.stdout
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        header = stdin.readline()
        if not header:
            return
        job = json.loads(header)
        code = stdin.read(job["size"]).decode()
        status, detail = _run(job, code)
        stdout.write(json.dumps({"status": status, "detail": detail}) + "\n")
        stdout.flush()


_serve()
"""

# Runs inside the namespaces: read-only mounts, a private tmpfs as the base directory, no
# capabilities, then the zygote (which is the PID namespace's init).
_FENCE = (
    'for m in $(awk "{print \\$2}" /proc/self/mounts); do '
    'mount -o remount,bind,ro "$m" 2>/dev/null; done; '
    'mount -t tmpfs -o size=64m,mode=0700 tmpfs "$1" && cd "$1" && '
    'exec setpriv --bounding-set -all --inh-caps -all "$2" -I -S "$4" '
    '"$2" -I -S -c "$3" namespaces 0 "$1"'
)
# Installs the seccomp filter, then execs the zygote (nclb.tasks.syscall_fence).
_LAUNCHER = syscall_fence.__file__
_UNSHARE = [
    "unshare",
    "--user",
    "--map-root-user",
    "--net",
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
]


@dataclass(frozen=True)
class Limits:
    """Per-program limits: wall time in seconds and address space in MiB."""

    timeout_s: float = 10.0
    memory_mb: int = 1024


@dataclass(frozen=True)
class Result:
    """Outcome of one program: status is "passed", "failed" or "timeout"; mode is the sandbox
    mode it ran in ("namespaces" or "guards-only")."""

    status: str
    detail: str = ""
    mode: str = ""

    @property
    def passed(self) -> bool:
        """True when the program ran to its end."""
        return self.status == "passed"


@functools.cache
def namespaces_available() -> bool:
    """Whether `unshare` can give a child its own user, network, mount and PID namespaces."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    try:
        probe = subprocess.run(
            [*_UNSHARE, "setpriv", "--bounding-set", "-all", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def resolve_mode(namespaces: bool | None = None) -> str:
    """The mode programs will run in: namespaces when available (and not switched off)."""
    if namespaces is None:
        namespaces = namespaces_available()
    elif namespaces and not namespaces_available():
        raise RuntimeError("user namespaces are not available on this machine")
    return "namespaces" if namespaces else "guards-only"


def guards_only_warning() -> str:
    """The one-line warning printed once per run when programs run in guards-only mode."""
    return (
        "warning: the sandbox runs in guards-only mode (user namespaces unavailable or switched "
        "off); it does not contain: " + "; ".join(GUARDS_ONLY_GAPS)
    )


class Worker:
    """One warm zygote process that runs programs one at a time (not thread-safe: one user)."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.mode = mode
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def _start(self) -> subprocess.Popen:
        self.base = tempfile.mkdtemp(prefix="nclb-sandbox-")
        # removed at close(), or when the worker is garbage or the interpreter exits
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.base, True)
        if self.mode == "namespaces":
            fence = [_FENCE, "sh", self.base, sys.executable, _ZYGOTE, _LAUNCHER]
            cmd = [*_UNSHARE, "sh", "-c", *fence]
        else:
            drop = "1" if os.geteuid() == 0 else "0"
            os.chmod(self.base, 0o711)  # `nobody` may enter the working folder, not list it
            zygote = [sys.executable, "-I", "-S", "-c", _ZYGOTE, "guards-only", drop, self.base]
            cmd = [sys.executable, "-I", "-S", _LAUNCHER, *zygote]
        return subprocess.Popen(
            cmd,
            cwd=self.base,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.base},
        )

    def run(self, code: str, limits: Limits) -> Result:
        """Run one program; a zygote that died or hangs is replaced and the program fails."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.proc = self._start()
        data = code.encode()
        header = {"size": len(data), "timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb}
        try:
            self.proc.stdin.write(json.dumps(header).encode() + b"\n" + data)
            self.proc.stdin.flush()
            line = self._read_line(limits.timeout_s + 30)
            reply = json.loads(line)
        except (OSError, ValueError, TimeoutError) as err:
            self.close()
            return Result("failed", f"sandbox worker lost: {err}", self.mode)
        return Result(reply["status"], reply["detail"], self.mode)

    def _read_line(self, timeout_s: float) -> str:
        fd, chunks = self.proc.stdout.fileno(), []
        while True:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                raise TimeoutError(f"no reply in {timeout_s:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("the sandbox worker exited")
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                return b"".join(chunks).decode()

    def close(self) -> None:
        """Stop the zygote (and anything left in its process group) and remove its folder."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None
        if self.base:
            self._cleanup()
            self.base = ""


class WorkerPool:
    """`size` warm workers; `run` borrows one (blocking while all are busy). Thread-safe."""

    def __init__(self, size: int, mode: str) -> None:
        self.mode = mode
        self._free = [Worker(mode) for _ in range(max(1, size))]
        self._all = list(self._free)
        self._lock = threading.Condition()

    def run(self, code: str, limits: Limits) -> Result:
        """Run one program on a free worker."""
        with self._lock:
            self._lock.wait_for(lambda: bool(self._free))
            worker = self._free.pop()
        try:
            return worker.run(code, limits)
        finally:
            with self._lock:
                self._free.append(worker)
                self._lock.notify()

    def close(self) -> None:
        """Stop every worker."""
        for worker in self._all:
            worker.close()


def run_python(code: str, limits: Limits = Limits(), namespaces: bool | None = None) -> Result:
    """Run `code` once in a fresh fenced worker; `namespaces=None` uses them when available."""
    worker = Worker(resolve_mode(namespaces))
    try:
        return worker.run(code, limits)
    finally:
        worker.close()


def run_many(
    codes: list[str],
    limits: Limits = Limits(),
    workers: int = 4,
    namespaces: bool | None = None,
    pool: WorkerPool | None = None,
) -> list[Result]:
    """Results of `codes` in order, `workers` programs at a time (each in its own child)."""
    own = pool is None
    pool = pool or WorkerPool(workers, resolve_mode(namespaces))
    run: Callable[[str], Result] = functools.partial(_run_on, pool, limits)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:
            return list(threads.map(run, codes))
    finally:
        if own:
            pool.close()


def _run_on(pool: WorkerPool, limits: Limits, code: str) -> Result:
    return pool.run(code, limits)
