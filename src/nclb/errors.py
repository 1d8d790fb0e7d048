"""Errors that mean "the user asked for something that cannot be done": shown as one line."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

# What to do about a file-system error, by errno.
FILE_SYSTEM_FIXES = {
    errno.ENOSPC: "free some disk space or set out_dir= to another disk",
    errno.EDQUOT: "free some disk space or set out_dir= to another disk",
    errno.EACCES: "make it writable or set out_dir= to a folder you can write",
    errno.EPERM: "make it writable or set out_dir= to a folder you can write",
    errno.EROFS: "the file system is read-only; set out_dir= to a writable folder",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a file stands where a folder is needed; set out_dir= to a folder",
    errno.EISDIR: "a folder stands where a file is needed; check the path",
}


class UserError(ValueError):
    """A bad input with a message that says what to change; the CLI prints it without a traceback."""


def file_system_message(err: OSError) -> str:
    """A one-line message for an OSError met while reading or writing files: what failed, on
    which path, and what to do. Records already written stay on disk (each is fsynced)."""
    where = f" ({err.filename})" if err.filename else ""
    reason = err.strerror or str(err) or type(err).__name__
    fix = FILE_SYSTEM_FIXES.get(err.errno, "check the path and the disk")
    return f"{reason}{where}: {fix}; finished records are kept, rerun the command to resume"


def exit_on_user_error(main: Callable[[], None]) -> None:
    """Run a script's main: a UserError ends it with its one-line message and exit status 2."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
