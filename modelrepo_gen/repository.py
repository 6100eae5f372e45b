"""Writes a repository all at once: built in a hidden sibling folder, then moved into place.

A failed build leaves the previous repository untouched; a replaced one is removed only after
the new one is in place, and only if this tool wrote everything in it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelrepo_gen.errors import UserError
from modelrepo_gen.manifest import MANIFEST
from modelrepo_gen.ownership import check_replaceable

__all__ = ["MANIFEST", "check_output_dir", "publish", "staging_folder"]


def check_output_dir(path: Path, force: bool) -> None:
    """Fail early, before any work, if `path` must not be written."""
    if path.is_file():
        raise UserError(f"output_dir {path} is a file, not a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not force:
        raise UserError(f"output_dir {path} already exists; pass force=true to replace it")
    check_replaceable(path)


@contextmanager
def staging_folder(path: Path) -> Iterator[Path]:
    """A hidden folder beside `path`, removed unless it was published."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.building-", dir=path.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, path: Path, force: bool) -> None:
    """Move the finished repository from `staging` to `path`."""
    check_output_dir(path, force)
    if path.is_dir() and any(path.iterdir()):
        previous = Path(tempfile.mkdtemp(prefix=f".{path.name}.previous-", dir=path.parent))
        os.replace(path, previous / path.name)
        os.replace(staging, path)
        shutil.rmtree(previous, ignore_errors=True)
        return
    if path.is_dir():
        path.rmdir()
    os.replace(staging, path)
