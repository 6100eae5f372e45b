"""Bad .nemo files made from good ones: read an archive's members, pack members (and extra tar
entries) into a new archive, or repack one with its model_config.yaml changed."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml


def nemo_members(source: Path) -> dict[str, bytes]:
    with tarfile.open(source) as archive:
        return {
            m.name.removeprefix("./"): archive.extractfile(m).read()
            for m in archive.getmembers()
            if m.isfile()
        }


def pack_nemo(path: Path, members: dict[str, bytes], extra: Iterable[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def with_changed_config(path: Path, source: Path, change: Callable[[dict], object]) -> Path:
    """`source` repacked at `path` with `change` applied to its model_config.yaml."""
    members = nemo_members(source)
    config = yaml.safe_load(members["model_config.yaml"])
    change(config)
    members["model_config.yaml"] = yaml.safe_dump(config).encode()
    return pack_nemo(path, members)
