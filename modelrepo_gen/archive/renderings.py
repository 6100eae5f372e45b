"""Which of an archive's repositories deploy writes: the built one, or the one the build
rendered for the asked target and backend (modelrepo_gen/assembly/renderings.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelrepo_gen.archive.container import check_relative, damaged
from modelrepo_gen.archive.read import Archive, check_repository
from modelrepo_gen.archive.write import RENDERINGS, rendering_name
from modelrepo_gen.core.errors import UserError

TARGETS = ("cpu", "gpu")
BACKENDS = ("onnx", "torchscript", "tensorrt")
TENSORRT = "tensorrt"


@dataclass
class Served:
    """A repository deploy can write, before its engines are made and its packages packed."""

    target: str
    backend: str
    files: dict[str, bytes]  # path in the repository -> content
    empty_folders: list[str]
    python_packages: dict[str, str]  # distribution -> version, what the python models import
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> how it is made


def served_repository(
    archive: Archive, target: str | None, backend: str | None, where: str
) -> Served:
    """The repository for `target` and `backend` (None: as built; TensorRT implies gpu)."""
    index = archive.index
    built = (str(index.get("target")), str(index.get("backend")))
    if backend == TENSORRT and target is None:
        target = "gpu"
    if backend == TENSORRT and target != "gpu":
        raise UserError("--backend tensorrt needs --target gpu: TensorRT engines serve on GPUs")
    wanted = (target or built[0], backend or built[1])
    if wanted == built:
        packages = dict(index.get("python_packages", {}))
        return Served(*built, archive.repository, archive.empty_folders, packages)
    asked = f"target={wanted[0]} with backend={wanted[1]}"
    renderings = index.get(RENDERINGS)
    entry = renderings.get(rendering_name(*wanted)) if isinstance(renderings, dict) else None
    if not isinstance(entry, dict):
        raise UserError(
            f"{where} was built for target={built[0]} with backend={built[1]} and holds no "
            f"repository for {asked}: build the archive with target={wanted[0]} "
            f"backend={wanted[1]}"
        )
    if "reason" in entry:
        raise UserError(f"{where} cannot be deployed for {asked}: {entry['reason']}")
    return _rendered(archive, entry, wanted, where)


def _rendered(archive: Archive, entry: dict, wanted: tuple[str, str], where: str) -> Served:
    name = rendering_name(*wanted)
    try:
        paths = [str(path) for path in entry["files"]]
        folders = [str(folder) for folder in entry["empty_folders"]]
        packages = {str(k): str(v) for k, v in entry["python_packages"].items()}
        engines = dict(entry["engines"])
    except (KeyError, TypeError, AttributeError):
        raise damaged(where, f"its {name} rendering cannot be read") from None
    for path in [*paths, *folders, *engines]:
        check_relative(path, where)
    prefix = f"{RENDERINGS}/{name}/"
    files = {}
    for path in paths:
        content = archive.members.get(prefix + path, archive.repository.get(path))
        if content is None:
            raise damaged(where, f"its {name} rendering lacks {path}")
        files[path] = content
    check_repository(files, where)
    return Served(*wanted, files, folders, packages, engines)
