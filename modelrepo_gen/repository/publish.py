"""Writes a repository all at once: built in a hidden sibling folder, then swapped into place.

A failed or interrupted build leaves the previous repository untouched; a replaced one is
removed only after the new one is in place, and only if this tool wrote everything in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.interrupts import BuildInterrupted, Interrupts, interruptible
from modelrepo_gen.repository.manifest import MANIFEST
from modelrepo_gen.repository.ownership import check_replaceable
from modelrepo_gen.repository.staging import LEFTOVER, clean_leftovers, staging_folder
from modelrepo_gen.repository.swap import swap_into_place

__all__ = [
    "MANIFEST",
    "cannot_write",
    "check_nearest_parent_is_a_folder",
    "check_output_dir",
    "check_output_location",
    "clean_leftovers",
    "publish",
    "staging_folder",
    "written_all_or_nothing",
]


@contextmanager
def written_all_or_nothing(path: Path) -> Iterator[Interrupts]:
    """Around writing `path` (a repository, an archive, a folder of manifests) through a
    staging folder: what interrupted writes left beside it is cleaned first; a signal ends the
    block as BuildInterrupted (also when a library wrapped it), and an OSError met writing
    becomes `cannot write PATH: CAUSE`. The Interrupts hold signals while publishing."""
    with interruptible() as interrupts:
        try:
            clean_leftovers(path)
            yield interrupts
        except Exception as exc:
            if interrupts.signum is not None and not isinstance(exc, BuildInterrupted):
                raise BuildInterrupted(interrupts.signum) from None  # arrived wrapped by a library
            if isinstance(exc, OSError) and (error := cannot_write(exc, path)):
                raise error from None
            raise


def check_output_location(raw: str, path: Path) -> None:
    """Refuse output_dir values whose replacement would take the user's own folders with it."""
    if not str(raw).strip():
        raise UserError(
            "output_dir is empty; name the folder to write the repository to, "
            "e.g. output_dir=model_repository"
        )
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        cwd = None
    for protected, what in ((cwd, "the current directory"), (Path.home().resolve(), "home")):
        if protected is not None and (protected == path or path in protected.parents):
            raise UserError(
                f"output_dir {path} is or contains {what} ({protected}); a build replaces "
                "output_dir as a whole, so name a folder of its own, e.g. "
                f"output_dir={protected / 'model_repository'}"
            )


def check_nearest_parent_is_a_folder(path: Path) -> None:
    """`path` can be created: the nearest of its parents that exists is a folder."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot write {path}: {parent} is a file, not a folder")
            break


def check_output_dir(path: Path, force: bool, force_option: str = "force=true") -> None:
    """Fail early, before any work, if `path` must not be written; `force_option` is how the
    command is told to replace it."""
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise UserError(f"output_dir {path} is a file, not a folder")
    check_nearest_parent_is_a_folder(path)
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not force:
        raise UserError(f"output_dir {path} already exists; pass {force_option} to replace it")
    check_replaceable(path)


def publish(staging: Path, path: Path, force: bool, force_option: str = "force=true") -> None:
    """Move the finished repository from `staging` to `path`."""
    check_output_dir(path, force, force_option)  # again: it may have changed during the build
    if path.is_dir() and any(path.iterdir()):
        swap_into_place(staging, path)
    else:
        os.rename(staging, path)  # in place of nothing, or of an empty folder


def cannot_write(exc: OSError, path: Path) -> UserError | None:
    """`cannot write PATH: CAUSE` for an OSError met writing the repository at `path`.

    Names the file when it is `path`, inside it or above it, and `path` itself for the build's
    hidden folders beside it; None when the error concerns some other file.
    """
    cause = exc.strerror or exc
    # A copy or a rename names two files (shutil's copy on a full disk: source, destination):
    # the destination is the one written, and the source may lie anywhere, e.g. site-packages.
    names = [name for name in (exc.filename2, exc.filename) if name is not None]
    if not names:  # e.g. a write that ran out of space
        return UserError(f"cannot write {path}: {cause}")
    for name in names:
        named = _users_path(Path(os.fsdecode(name)).absolute(), path)
        if named is not None:
            return UserError(f"cannot write {named}: {cause}")
    return None


def _users_path(named: Path, path: Path) -> Path | None:
    """`named` if it is `path`, inside it or above it; `path` for a hidden folder beside it."""
    hidden = next((p for p in (named, *named.parents) if LEFTOVER.match(p.name)), None)
    if hidden is not None and hidden.parent == path.parent:
        return path
    if named in (path, *path.parents) or path.parent in named.parents:
        return named
    return None
