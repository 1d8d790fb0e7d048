"""The kernel-level fence of the sandbox: a seccomp filter on the worker and every process it forks.

Run as a script (`python -I -S syscall_fence.py PROGRAM ARG...`) it sets no_new_privs, installs
the filter on itself and execs PROGRAM (the sandbox's warm worker). The filter then holds for
that worker and all its children, whatever they do:
- exec is refused except for one call: the one whose path pointer is this launcher's own buffer
  (the exec into the worker); `execveat` is refused outright;
- no socket can be created (no network, no Unix sockets);
- files cannot be opened for writing, created, truncated, renamed, linked, removed, or have
  their mode, owner, times or extended attributes changed; no directories are made;
- no tracing or memory access of other processes (`ptrace`, `process_vm_*`, `pidfd_getfd`),
  no signals through pidfds, no io_uring, bpf, perf events, userfaultfd, namespaces, mounts,
  keyrings, System V or POSIX message/shared-memory IPC, modules, reboot, swap or clock changes;
- a system call of another architecture (x32 on x86_64) kills the process.
Refused calls fail with EPERM, so Python raises PermissionError. The filter cannot be removed.
If it cannot be installed (another architecture, no seccomp), the launcher does not start the
worker: it answers every program on the worker's protocol with a failure naming the reason.

This file imports only the standard library: it runs isolated, outside the nclb package.
"""

from __future__ import annotations

import json
import os
import struct
import sys

ARCHES = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # AUDIT_ARCH_* values
_X32_BIT = 0x40000000
# Refused everywhere; names are kernel system calls, numbers per architecture below.
REFUSED = (
    "execveat", "socket", "creat", "openat2", "rename", "renameat", "renameat2", "unlink",
    "unlinkat", "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod",
    "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "truncate",
    "ftruncate", "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat", "setxattr",
    "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "fallocate",
    "name_to_handle_at", "open_by_handle_at", "ptrace", "process_vm_readv", "process_vm_writev",
    "pidfd_getfd", "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "perf_event_open", "userfaultfd", "unshare", "setns", "mount", "umount2", "pivot_root",
    "chroot", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "keyctl", "add_key", "request_key", "shmget", "shmat", "shmctl", "semget", "semop", "semctl",
    "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "seccomp", "acct", "swapon", "swapoff", "reboot", "sethostname", "setdomainname",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "quotactl",
    "fanotify_init", "kcmp", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
)  # fmt: skip
# x86_64: arch/x86/entry/syscalls/syscall_64.tbl; aarch64: include/uapi/asm-generic/unistd.h.
# A name missing from an architecture's table does not exist there.
SYSCALLS = {
    "x86_64": {
        "execve": 59, "execveat": 322, "socket": 41, "open": 2, "openat": 257, "creat": 85,
        "openat2": 437, "rename": 82, "renameat": 264, "renameat2": 316, "unlink": 87,
        "unlinkat": 263, "mkdir": 83, "mkdirat": 258, "rmdir": 84, "link": 86, "linkat": 265,
        "symlink": 88, "symlinkat": 266, "chmod": 90, "fchmod": 91, "fchmodat": 268,
        "fchmodat2": 452, "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260,
        "truncate": 76, "ftruncate": 77, "utime": 132, "utimes": 235, "utimensat": 280,
        "futimesat": 261, "mknod": 133, "mknodat": 259, "setxattr": 188, "lsetxattr": 189,
        "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
        "fallocate": 285, "name_to_handle_at": 303, "open_by_handle_at": 304, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
        "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "mount_setattr": 442, "move_mount": 429, "open_tree": 428, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "keyctl": 250, "add_key": 248,
        "request_key": 249, "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65,
        "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
        "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "seccomp": 317, "acct": 163,
        "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
        "kexec_file_load": 320, "quotactl": 179, "fanotify_init": 300, "kcmp": 312,
        "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305,
    },
    "aarch64": {
        "execve": 221, "execveat": 281, "socket": 198, "openat": 56, "openat2": 437,
        "renameat": 38, "renameat2": 276, "unlinkat": 35, "mkdirat": 34, "linkat": 37,
        "symlinkat": 36, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "fchown": 55,
        "fchownat": 54, "truncate": 45, "ftruncate": 46, "utimensat": 88, "mknodat": 33,
        "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
        "fremovexattr": 16, "fallocate": 47, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
        "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "mount_setattr": 442, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "keyctl": 219, "add_key": 217, "request_key": 218,
        "shmget": 194, "shmat": 196, "shmctl": 195, "semget": 190, "semop": 193, "semctl": 191,
        "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187,
        "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182, "seccomp": 277, "acct": 89,
        "swapon": 224, "swapoff": 225, "reboot": 142, "sethostname": 161, "setdomainname": 162,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104,
        "kexec_file_load": 294, "quotactl": 60, "fanotify_init": 262, "kcmp": 272,
        "settimeofday": 170, "clock_settime": 112, "adjtimex": 171, "clock_adjtime": 266,
    },
}  # fmt: skip
# open(path, flags, ...) and openat(dirfd, path, flags, ...): which argument holds the flags.
OPEN_FLAGS_ARG = {"open": 1, "openat": 2}
# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | __O_TMPFILE (same values on both arches)
WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000 | 0o20000000

# classic BPF opcodes and seccomp return values
LD_ABS_W, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
EPERM = 1
OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16  # struct seccomp_data (little-endian)


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _arg(index: int, high: bool = False) -> int:
    return OFFSET_ARGS + 8 * index + (4 if high else 0)


def program(arch: str, exec_path: int) -> bytes:
    """The filter (struct sock_filter[] bytes) for `arch`, admitting only the exec whose path
    pointer is `exec_path`."""
    if arch not in ARCHES:
        raise ValueError(f"no seccomp table for {arch!r} (supported: {', '.join(ARCHES)})")
    table = SYSCALLS[arch]
    refuse = _ins(RET_K, 0, 0, RET_ERRNO | EPERM)
    out = [
        _ins(LD_ABS_W, 0, 0, OFFSET_ARCH),
        _ins(JEQ_K, 1, 0, ARCHES[arch]),
        _ins(RET_K, 0, 0, RET_KILL_PROCESS),
        _ins(LD_ABS_W, 0, 0, OFFSET_NR),
    ]
    if arch == "x86_64":
        out += [_ins(JGE_K, 0, 1, _X32_BIT), _ins(RET_K, 0, 0, RET_KILL_PROCESS)]
    for name in REFUSED:
        if name in table:
            out += [_ins(JEQ_K, 0, 1, table[name]), refuse]
    # execve: allowed only with the launcher's own path buffer (low then high 32 bits)
    out += [
        _ins(JEQ_K, 0, 6, table["execve"]),
        _ins(LD_ABS_W, 0, 0, _arg(0)),
        _ins(JEQ_K, 0, 3, exec_path & 0xFFFFFFFF),
        _ins(LD_ABS_W, 0, 0, _arg(0, high=True)),
        _ins(JEQ_K, 0, 1, exec_path >> 32),
        _ins(RET_K, 0, 0, RET_ALLOW),
        refuse,
    ]
    for name, index in OPEN_FLAGS_ARG.items():
        if name in table:
            out += [
                _ins(JEQ_K, 0, 3, table[name]),
                _ins(LD_ABS_W, 0, 0, _arg(index)),
                _ins(JSET_K, 0, 1, WRITE_FLAGS),
                refuse,
                _ins(LD_ABS_W, 0, 0, OFFSET_NR),
            ]
    out.append(_ins(RET_K, 0, 0, RET_ALLOW))
    return b"".join(out)


def _install_and_exec(argv: list[str]) -> str:
    """Install the filter and exec `argv`; returns the reason only when that failed."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    path = ctypes.create_string_buffer(os.fsencode(argv[0]))
    args = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
    env = [os.fsencode(f"{k}={v}") for k, v in os.environ.items()]
    envp = (ctypes.c_char_p * (len(env) + 1))(*env, None)
    try:
        code = program(os.uname().machine, ctypes.addressof(path))
    except ValueError as err:
        return str(err)
    filters = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(code) // 8, ctypes.addressof(filters))
    ulong = ctypes.c_ulong
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, ulong(1), ulong(0), ulong(0), ulong(0)) != 0:
        return "prctl(PR_SET_NO_NEW_PRIVS) failed: " + os.strerror(ctypes.get_errno())
    if libc.prctl(pr_set_seccomp, ulong(seccomp_mode_filter), ctypes.byref(fprog), 0, 0) != 0:
        return "seccomp filter not installed: " + os.strerror(ctypes.get_errno())
    libc.execve(path, args, envp)
    return "exec of the sandbox worker failed: " + os.strerror(ctypes.get_errno())


def _refuse_every_program(reason: str) -> None:
    """Answer the worker protocol (header line, code) with a failure for every program."""
    stdin, stdout = sys.stdin.buffer, sys.stdout
    reply = json.dumps({"status": "failed", "detail": "sandbox set-up failed: " + reason})
    while header := stdin.readline():
        stdin.read(json.loads(header)["size"])
        stdout.write(reply + "\n")
        stdout.flush()


if __name__ == "__main__":
    _refuse_every_program(_install_and_exec(sys.argv[1:]))
