"""Staging folders: where a repository is built before it is published in output_dir's place.

Each build works in a hidden folder beside output_dir, `.NAME.building-XXXXXXXX`, on which it
holds an exclusive lock (flock) for as long as it runs. A build that ends without cleaning up
(kill -9, a power cut) leaves its folder unlocked, and the next build in the same parent folder
removes it; a live build's folder is locked and never touched. A folder is created under a claim
name and gets its lookup name only once locked, so no one ever finds a live one unlocked.

`.NAME.previous-XXXXXXXX` holds a replaced repository while it is swapped out on file systems
without an atomic exchange (see swap.py): if output_dir is missing, the next build moves it back.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("modelrepo_gen")

LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>claiming|building|previous)-[a-z0-9_]{8}$")
# A claim is renamed microseconds after it is created and locked; one older than this is dead.
CLAIM_GRACE_S = 60.0


def try_lock(folder: Path) -> int | None:
    """An open descriptor holding `folder`'s exclusive lock, or None if a live process holds it."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def clean_leftovers(path: Path) -> None:
    """Remove what interrupted builds left beside `path`; put back a repository moved aside."""
    parent = path.parent
    if not parent.is_dir():
        return
    for entry in sorted(parent.iterdir()):
        match = LEFTOVER.match(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        fd = try_lock(entry)
        if fd is None:
            continue  # a live build's
        try:
            if match["kind"] == "claiming" and time.time() - entry.stat().st_mtime < CLAIM_GRACE_S:
                continue
            target = parent / match["name"]
            if match["kind"] == "previous" and not (target.exists() or target.is_symlink()):
                os.rename(entry, target)
                log.warning("restored %s, which an interrupted build had moved aside", target)
            else:
                shutil.rmtree(entry, ignore_errors=True)
        finally:
            os.close(fd)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def staging_folder(path: Path) -> Iterator[Path]:
    """A locked hidden folder beside `path`, removed unless it was published.

    Parent folders it had to create are removed again when the build fails.
    """
    created: list[Path] = []
    try:
        _make_parents(path.parent, created)
        claim = Path(tempfile.mkdtemp(prefix=f".{path.name}.claiming-", dir=path.parent))
        staging = path.parent / f".{path.name}.building-{claim.name[-8:]}"
        fd = os.open(claim, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(claim, staging)
        except BaseException:
            shutil.rmtree(claim, ignore_errors=True)
            os.close(fd)
            raise
        try:
            # mkdtemp makes it 0700; the published repository follows the umask like any output.
            os.chmod(staging, 0o777 & ~current_umask())
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            os.close(fd)
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _make_parents(folder: Path, created: list[Path]) -> None:
    """Create `folder` and its missing parents, recording each in `created`, deepest first."""
    missing = []
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for parent in reversed(missing):
        parent.mkdir()
        created.insert(0, parent)
