"""Reads a NeMo `.nemo` file: a tar (optionally gzipped) of model_config.yaml, model_weights.ckpt
and, for BPE models, tokenizer files the config names as `nemo:<file>`.

Every member is checked before anything is extracted: only plain files and folders, none whose
path is absolute or climbs out with `..` (as Python's tarfile `data` filter enforces, which the
extraction also uses). An archive is read once per process, into a private folder removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from modelrepo_gen.core.errors import UserError

CONFIG = "model_config.yaml"
WEIGHTS = "model_weights.ckpt"
NEMO_PREFIX = "nemo:"
LABEL = "model.checkpoint"


@dataclass(frozen=True)
class NemoArchive:
    path: Path  # the .nemo file
    folder: Path  # where its members were extracted
    config: dict[str, Any]  # model_config.yaml
    label: str = LABEL  # the setting that named the file, for messages

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS

    def member(self, reference: str, setting: str) -> Path:
        """The extracted file a config value such as `nemo:abc_tokenizer.model` names."""
        name = reference[len(NEMO_PREFIX) :] if reference.startswith(NEMO_PREFIX) else reference
        found = self.folder / PurePosixPath(name).name
        if not found.is_file():
            raise UserError(
                f"{self.label}: {self.path.name} sets {setting}: {reference}, but the archive "
                f"holds no file {PurePosixPath(name).name}"
            )
        return found


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        return f"member {member.name!r} would be written outside the extraction folder"
    if not (member.isfile() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "special file"
        return f"member {member.name!r} is a {kind}; only plain files and folders are allowed"
    return None


def _extract(path: Path, label: str) -> Path:
    try:
        archive = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, EOFError, OSError):
        raise UserError(
            f"{label} {path} is not a .nemo file: expected a tar archive (optionally gzipped) "
            f"holding {CONFIG} and {WEIGHTS}"
        ) from None
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise UserError(f"{label} {path} is a damaged tar archive: {error}") from None
        for member in members:
            if problem := _member_problem(member):
                raise UserError(f"{label} {path} is refused: {problem}")
        names = {PurePosixPath(m.name).as_posix().removeprefix("./") for m in members}
        for required, what in ((CONFIG, "model config"), (WEIGHTS, "weights")):
            if required not in names:
                raise UserError(
                    f"{label} {path} holds no {required} ({what}); a .nemo file from NeMo's "
                    "save_to holds model_config.yaml and model_weights.ckpt"
                )
        folder = Path(tempfile.mkdtemp(prefix="modelrepo_gen-nemo-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        try:
            archive.extractall(folder, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise UserError(f"{label} {path} cannot be extracted: {error}") from None
    return folder


@functools.lru_cache(maxsize=4)
def _read(path: Path, size: int, mtime_ns: int, label: str) -> NemoArchive:
    folder = _extract(path, label)
    try:
        config = yaml.safe_load((folder / CONFIG).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())
        raise UserError(f"{label} {path}: {CONFIG} is not valid YAML ({problem})") from None
    if not isinstance(config, dict):
        raise UserError(f"{label} {path}: {CONFIG} holds no mapping of settings")
    return NemoArchive(path, folder, config, label)


def read_nemo(checkpoint: str | Path, label: str = LABEL) -> NemoArchive:
    """The archive at `checkpoint`, checked and extracted; UserError naming what is wrong and
    the setting (`label`) that named the file."""
    path = Path(checkpoint).expanduser().resolve()
    if path.is_dir():
        raise UserError(f"{label} {path} is a folder; expected a .nemo file")
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UserError(f"{label}: no such file: {path}") from None
    except OSError as error:
        raise UserError(f"{label} {path} cannot be read: {error.strerror or error}") from None
    return _read(path, stat.st_size, stat.st_mtime_ns, label)
