"""Run untrusted Python (model completions + tests) in a separate, fenced-in process.

Each program runs in a fresh `python -I` child, never in the caller's process:
- its own temporary working directory, deleted afterwards;
- a wall-clock timeout, after which the child's whole process group is killed;
- an address-space cap (RLIMIT_AS), a file-size cap and no core dumps;
- where Linux user namespaces are available (`unshare`): no network, every mount read-only, a
  private tmpfs as the working directory and its own PID namespace (all its processes die with it);
- always, best effort, inside the child: sockets, fork/exec, process killing and file deletion
  are disabled before the program runs.
A program passes only if it runs to its end: the harness then writes a random nonce, unknown to the
program, on a report pipe. `exit()`, `os._exit()`, crashes, kills and timeouts all count as failures.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Runs inside the child. Reads {"nonce", "code", "memory_mb"} from stdin.
_HARNESS = r"""
import builtins, json, os, resource, sys
job = json.loads(sys.stdin.read())
nonce, code = job.pop("nonce"), job.pop("code")
cap = job["memory_mb"] * 2**20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
resource.setrlimit(resource.RLIMIT_FSIZE, (2**24, 2**24))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
report = os.dup(1)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
_write, _exit = os.write, os._exit
import shutil, socket, subprocess
def _blocked(*args, **kwargs):
    raise PermissionError("blocked by the nclb sandbox")
class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _blocked()
socket.socket = _NoSocket
for _name in ("create_connection", "socketpair", "fromfd"):
    setattr(socket, _name, _blocked)
for _name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "putenv", "remove",
              "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
              "chmod", "fchmod", "chown", "fchown", "lchown", "setuid", "execv", "execve",
              "execvp", "execvpe", "spawnv", "spawnve", "posix_spawn", "posix_spawnp"):
    if hasattr(os, _name):
        setattr(os, _name, _blocked)
shutil.rmtree = shutil.move = shutil.chown = _blocked
subprocess.Popen = subprocess.run = subprocess.call = _blocked
sys.modules["_posixsubprocess"] = None
del job
try:
    exec(compile(code, "<program>", "exec"), {"__name__": "__sandbox__", "__builtins__": builtins})
except BaseException as err:
    _write(report, ("failed: %s: %s" % (type(err).__name__, err))[:500].encode())
    _exit(1)
_write(report, nonce.encode())
_exit(0)
"""

# Runs inside the namespaces: read-only mounts, a private tmpfs as cwd, then the harness.
_FENCE = (
    'for m in $(awk "{print \\$2}" /proc/self/mounts); do '
    'mount -o remount,bind,ro "$m" 2>/dev/null; done; '
    'mount -t tmpfs -o size=32m tmpfs "$1" && cd "$1" && exec "$2" -I -c "$3"'
)
_UNSHARE = ["unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork"]


@dataclass(frozen=True)
class Limits:
    """Per-program limits: wall time in seconds and address space in MiB."""

    timeout_s: float = 10.0
    memory_mb: int = 1024


@dataclass(frozen=True)
class Result:
    """Outcome of one program: status is "passed", "failed" or "timeout"."""

    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        """True when the program ran to its end."""
        return self.status == "passed"


@functools.cache
def namespaces_available() -> bool:
    """Whether `unshare` can give the child its own user, network, mount and PID namespaces."""
    if shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run([*_UNSHARE, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _command(workdir: str, fence: bool) -> list[str]:
    if fence:
        return [*_UNSHARE, "sh", "-c", _FENCE, "sh", workdir, sys.executable, _HARNESS]
    return [sys.executable, "-I", "-c", _HARNESS]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen) -> None:
    """Wait for a killed child without blocking on pipes held open by an escaped grandchild."""
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def run_python(code: str, limits: Limits = Limits(), namespaces: bool | None = None) -> Result:
    """Run `code` in a fenced child process; `namespaces=None` uses them when available."""
    fence = namespaces_available() if namespaces is None else namespaces
    nonce = secrets.token_hex(16)
    job = json.dumps({"nonce": nonce, "code": code, "memory_mb": limits.memory_mb})
    workdir = tempfile.mkdtemp(prefix="nclb-sandbox-")
    try:
        proc = subprocess.Popen(
            _command(workdir, fence),
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir},
        )
        try:
            out, _ = proc.communicate(job.encode(), timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            _reap(proc)
            return Result("timeout", f"killed after {limits.timeout_s:g} s")
        finally:
            _kill_group(proc.pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = out.decode(errors="replace")
    if proc.returncode == 0 and text == nonce:
        return Result("passed")
    return Result("failed", text.replace(nonce, "") or f"exit status {proc.returncode}")


def run_many(
    codes: list[str], limits: Limits = Limits(), workers: int = 4, namespaces: bool | None = None
) -> list[Result]:
    """`run_python` over `codes` with a small thread pool (each program is its own process)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda code: run_python(code, limits, namespaces), codes))
