"""Recognises repositories this tool built, so that `force=true` never deletes anything else.

A folder is ours when its manifest.json names modelrepo_gen as its generator and every file in
it is one the manifest lists, with the hash the manifest records. The bytecode Python caches when
Triton's python backend imports a model.py of ours (`__pycache__/model.*.pyc`) is derived from
our files and counts as ours. Folders hold no data of their own and are not checked. Anything
else (a file added or edited after the build, a link, a socket) belongs to someone else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.manifest import GENERATOR, MANIFEST, file_sha256

SHOWN = 6  # entries named in a refusal; the rest are counted


def check_replaceable(path: Path) -> None:
    """Raise UserError naming what is in the way unless `path` holds only what we wrote."""
    listed = _our_file_hashes(path)
    if listed is None:
        manifest = path / MANIFEST
        reason = (
            f"its {MANIFEST} was not written by modelrepo_gen"
            if manifest.exists() or manifest.is_symlink()
            else f"no {MANIFEST}"
        )
        raise UserError(
            f"refusing to replace {path}: it is not a repository built by modelrepo_gen "
            f"({reason}; it holds {_listing(_top_level(path))}); choose another output_dir"
        )
    foreign = _foreign_entries(path, listed)
    if foreign:
        raise UserError(
            f"refusing to replace {path}: it holds files modelrepo_gen did not write: "
            f"{_listing(foreign)}; move them out or delete them, or choose another output_dir"
        )


def _our_file_hashes(path: Path) -> dict[str, str] | None:
    """The manifest's file -> sha256 table, or None when the manifest is not ours."""
    manifest = path / MANIFEST
    if manifest.is_symlink():
        return None
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    generator, files = data.get("generator"), data.get("files")
    if not isinstance(generator, dict) or generator.get("name") != GENERATOR:
        return None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    return files


def _foreign_entries(root: Path, listed: dict[str, str]) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):  # does not follow links
        dirs.sort()
        here = Path(folder)
        for name in list(dirs):
            if (here / name).is_symlink():
                found.append(f"{(here / name).relative_to(root).as_posix()} (a link)")
                dirs.remove(name)
        for name in sorted(files):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if relative == MANIFEST:
                continue
            if path.is_symlink() or not path.is_file():
                found.append(f"{relative} (not a plain file)")
            elif relative in listed:
                if file_sha256(path) != listed[relative]:
                    found.append(f"{relative} (changed since the build)")
            elif not _is_cached_bytecode(relative, listed):
                found.append(f"{relative} (added)")
    return found


def _is_cached_bytecode(relative: str, listed: dict[str, str]) -> bool:
    parts = PurePosixPath(relative)
    if parts.parent.name != "__pycache__" or parts.suffix != ".pyc":
        return False
    source = parts.parent.parent / f"{parts.name.split('.')[0]}.py"
    return source.as_posix() in listed


def _top_level(path: Path) -> list[str]:
    entries = path.iterdir()
    return sorted(f"{p.name}/" if p.is_dir() and not p.is_symlink() else p.name for p in entries)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown if len(names) <= SHOWN else f"{shown} and {len(names) - SHOWN} more"
