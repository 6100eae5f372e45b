"""What deploy calls: an archive file, decrypted if sealed, every byte checked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelrepo_gen.archive.container import check_relative, damaged, unpack
from modelrepo_gen.archive.encryption import is_sealed, unseal
from modelrepo_gen.archive.write import FORMAT, PYTHON, REPOSITORY
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.manifest import MANIFEST, file_hashes_of


@dataclass
class Archive:
    index: dict[str, Any]
    repository: dict[str, bytes]  # path inside the repository -> content
    encrypted: bool
    wheels: dict[str, dict[str, bytes]]  # CPython X.Y -> wheel file name -> content
    # Every other member (the other renderings, the engines' checks): name -> content.
    members: dict[str, bytes] = field(default_factory=dict)

    @property
    def empty_folders(self) -> list[str]:
        """Folders of the repository that hold nothing (an ensemble's version folder)."""
        return [str(folder) for folder in self.index.get("empty_folders", [])]


def read_archive(path: Path, key: bytes | None, key_option: str = "--key-file") -> Archive:
    """The archive at `path`; `key` is the key material (None for a plain archive)."""
    where = f"archive {path}"
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UserError(f"{where} is a folder, not an archive file") from None
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}") from None
    sealed = is_sealed(data)
    if sealed and key is None:
        raise UserError(f"{where} is encrypted: pass its key with {key_option} or --key-env")
    if not sealed and key is not None and data:
        raise UserError(f"{where} is not encrypted: deploy it without a key")
    if sealed:
        assert key is not None
        data = unseal(data, key, where)
    index, members = unpack(data, where, FORMAT)
    prefix = f"{index.get('repository', REPOSITORY)}/"
    repository = {
        name.removeprefix(prefix): content
        for name, content in members.items()
        if name.startswith(prefix)
    }
    check_repository(repository, where)
    folders = index.get("empty_folders", [])
    if not isinstance(folders, list):
        raise damaged(where, "its list of empty folders cannot be read")
    for folder in folders:
        check_relative(folder, where)
    wheels: dict[str, dict[str, bytes]] = {}
    others = {}
    for name, content in members.items():
        if name.startswith(f"{PYTHON}/") and name.count("/") == 2:
            _, python, wheel = name.split("/")
            wheels.setdefault(python, {})[wheel] = content
        elif not name.startswith(prefix):
            others[name] = content
    return Archive(index, repository, sealed, wheels, others)


def check_repository(files: dict[str, bytes], where: str) -> None:
    """The repository's own manifest lists exactly its files, with their hashes."""
    if MANIFEST not in files:
        raise damaged(where, f"its repository has no {MANIFEST}")
    try:
        listed = json.loads(files[MANIFEST])["files"]
    except (ValueError, KeyError, TypeError):
        raise damaged(where, f"its repository's {MANIFEST} cannot be read") from None
    if listed != file_hashes_of({k: v for k, v in files.items() if k != MANIFEST}):
        raise damaged(where, f"its repository's files differ from its {MANIFEST}")
