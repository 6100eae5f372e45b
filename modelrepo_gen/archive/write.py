"""What the build calls for `archive=PATH`: the staged repository becomes one archive file."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from modelrepo_gen import __version__
from modelrepo_gen.archive.container import pack
from modelrepo_gen.archive.encryption import seal
from modelrepo_gen.archive.keys import key_material
from modelrepo_gen.archive.python_packages import download_wheels, required_distributions
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.manifest import GENERATOR
from modelrepo_gen.repository.publish import check_nearest_parent_is_a_folder
from modelrepo_gen.repository.staging import current_umask

FORMAT = 1  # the archive layout; deploy refuses archives of a newer one
REPOSITORY = "repository"  # the folder inside the archive holding the built repository
PYTHON = "python"  # python/X.Y/*.whl: the python models' packages for CPython X.Y
RENDERINGS = "renderings"  # renderings/<target>-<backend>/: their files that differ from the built
ENGINE_CHECKS = "engine_checks"  # engine_checks/<rendering>/<model>/<shape>/{input,output}_N.npy
PYTHON_VERSION = re.compile(r"3\.\d{1,2}")
STAGED_FILE = "archive"  # its name inside the build's staging folder, before it is moved


@dataclass(frozen=True)
class ArchiveRequest:
    path: Path
    key: bytes | None  # None: a plain archive

    def __repr__(self) -> str:  # never the key, whatever prints this
        return f"ArchiveRequest(path={self.path!s}, encrypted={self.key is not None})"


@dataclass
class Rendering:
    """The repository rendered for another target or backend than the built one, so one
    archive deploys on any machine: the same networks, other configs (TensorRT engines are
    made by deploy on the serving GPU, from the ONNX networks)."""

    target: str
    backend: str
    folder: Path | None  # the whole repository, engines left out; None: it cannot serve so
    reason: str = ""  # why not, when it cannot
    engines: dict[str, dict] = field(default_factory=dict)  # engine path -> how deploy makes it
    # Archive member -> content: what deploy checks the engines with (under ENGINE_CHECKS).
    members: dict[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return rendering_name(self.target, self.backend)


def rendering_name(target: str, backend: str) -> str:
    return f"{target}-{backend}"


def archive_request(cfg: DictConfig) -> ArchiveRequest | None:
    """The archive the build writes instead of output_dir, or None; its key is read now."""
    key_file, key_env = cfg.get("archive_key_file"), cfg.get("archive_key_env")
    if not cfg.get("archive"):
        if key_file or key_env:
            raise UserError(
                "an archive key is set but archive is not: name the file to write, "
                "e.g. archive=asr.mrga"
            )
        return None
    path = Path(str(cfg.archive)).expanduser().absolute()
    key = key_material(key_file, key_env, option="archive_key_")
    return ArchiveRequest(path, key)


def pythons(cfg: DictConfig) -> list[str]:
    """archive_python: the CPython versions (X.Y) to carry packages for; default this one's."""
    raw = cfg.get("archive_python")
    if raw is None:
        return [f"{sys.version_info.major}.{sys.version_info.minor}"]
    versions = [str(v) for v in (raw if isinstance(raw, (list, ListConfig)) else [raw])]
    for version in versions:
        if not PYTHON_VERSION.fullmatch(version):
            raise UserError(
                f"archive_python: '{version}' is not a Python version like 3.11 "
                "(write a list as archive_python=[3.11,3.12])"
            )
        if int(version.split(".")[1]) < 8:  # none the packages support; 3.10 read as 3.1?
            raise UserError(
                f"archive_python: Python {version} is too old for the python models' packages; "
                f"for 3.{version.split('.')[1]}0 quote it (the command line reads 3.10 as a "
                "number, 3.1): archive_python='\"3.10\"'"
            )
    return sorted(set(versions))


def check_archive_path(path: Path, force: bool) -> None:
    """Fail before any work if `path` must not be written."""
    if path.is_dir():
        raise UserError(f"archive {path} is a folder; name the archive file, e.g. {path}.mrga")
    check_nearest_parent_is_a_folder(path)
    if (path.exists() or path.is_symlink()) and not force:
        raise UserError(f"archive {path} already exists; pass force=true to replace it")


def stage_archive(
    repository: Path,
    staging: Path,
    request: ArchiveRequest,
    cfg: DictConfig,
    renderings: Sequence[Rendering] = (),
) -> Path:
    """Write the archive of the built `repository` (and its other `renderings`) into `staging`;
    returns the staged file."""
    built = _files(repository)
    files = {f"{REPOSITORY}/{name}": content for name, content in built.items()}
    index = _index(cfg)
    # Kept as names: the archive holds files only (e.g. an ensemble's empty version folder).
    index["empty_folders"] = _empty_folders(repository)
    # The python models' packages, as wheels for each Python the archive may be served with.
    packages = required_distributions(repository)
    index["python_packages"], index["python"], index[RENDERINGS] = packages, {}, {}
    wanted = dict(packages)
    for rendering in renderings:
        entry: dict[str, Any] = {"target": rendering.target, "backend": rendering.backend}
        index[RENDERINGS][rendering.name] = entry
        if rendering.folder is None:
            entry["reason"] = rendering.reason
            continue
        rendered = _files(rendering.folder)
        entry["files"] = sorted(rendered)
        entry["empty_folders"] = _empty_folders(rendering.folder)
        entry["python_packages"] = required_distributions(rendering.folder)
        entry["engines"] = rendering.engines
        wanted.update(entry["python_packages"])
        prefix = f"{RENDERINGS}/{rendering.name}"
        files.update(
            {
                f"{prefix}/{name}": content
                for name, content in rendered.items()
                if built.get(name) != content
            }
        )
        files.update(rendering.members)
    for python in pythons(cfg):
        wheels = download_wheels(wanted, python, staging / f"wheels-{python}")
        index["python"][python] = [wheel.name for wheel in wheels]
        files.update({f"{PYTHON}/{python}/{wheel.name}": wheel.read_bytes() for wheel in wheels})
    data = pack(index, files)
    if request.key is not None:
        data = seal(data, request.key)
    staged = staging / STAGED_FILE
    with staged.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return staged


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _empty_folders(root: Path) -> list[str]:
    return [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*"))
        if path.is_dir() and not any(path.iterdir())
    ]


def publish_archive(staged: Path, path: Path, force: bool) -> None:
    check_archive_path(path, force)  # again: the file may have appeared during the build
    os.chmod(staged, 0o644 & ~current_umask())
    os.replace(staged, path)


def _index(cfg: DictConfig) -> dict[str, Any]:
    """What deploy needs to know before it reads the repository."""
    return {
        "format": FORMAT,
        "generator": {"name": GENERATOR, "version": __version__},
        "pipeline": str(cfg.pipeline.name),
        "target": str(cfg.target.name),
        "backend": str(cfg.backend),
        "precision": str(cfg.precision.name),
        "repository": REPOSITORY,
    }
