"""Swaps a finished repository into output_dir's place in one step.

Linux's renameat2(RENAME_EXCHANGE) exchanges two folders atomically: at every moment output_dir
is either the old repository or the new one, whatever kills the build. The old repository ends
up under the staging folder's name and is removed with it (after kill -9, by the next build).

Where the file system or kernel cannot exchange, the old repository is locked and moved aside to
`.NAME.previous-XXXXXXXX` before the new one moves in. A build killed between those two renames
leaves output_dir missing; the next build moves the old repository back (staging.clean_leftovers).
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
from pathlib import Path

from modelrepo_gen.repository.staging import try_lock

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


class ExchangeUnsupported(Exception):
    """This system cannot exchange two paths atomically."""


def exchange(first: Path, second: Path) -> None:
    """Atomically swap what `first` and `second` name."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        raise ExchangeUnsupported("the C library has no renameat2")
    names = (os.fsencode(first), os.fsencode(second))
    if renameat2(_AT_FDCWD, names[0], _AT_FDCWD, names[1], _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        if code in _UNSUPPORTED:
            raise ExchangeUnsupported(os.strerror(code))
        raise OSError(code, os.strerror(code), str(second))


def move_aside(path: Path) -> Path:
    """The first of the two renames of the fallback: `path` to a `.previous-` name beside it."""
    previous = path.parent / f".{path.name}.previous-{secrets.token_hex(4)}"
    os.rename(path, previous)
    return previous


def swap_into_place(staging: Path, path: Path) -> None:
    """Put `staging` at `path`, an existing repository, which ends up under `staging`'s name
    (atomic exchange) or is removed (fallback)."""
    try:
        exchange(staging, path)
        return
    except ExchangeUnsupported:
        pass
    lock = try_lock(path)  # while it is aside, the lock tells the next build it is not a leftover
    try:
        previous = move_aside(path)
        os.rename(staging, path)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        if lock is not None:
            os.close(lock)
