"""Skips exports that would not change: a unit whose inputs to export are the same as those of
the repository being replaced reuses that repository's artifact and parity figures.

The key covers everything an export depends on: the module's weights and buffers, the source of
its class, the tensors, precision, format, parity settings and the versions of the exporting
packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import shutil
from pathlib import Path

import torch

from modelrepo_gen import __version__
from modelrepo_gen.core.build_plan import ExportSpec
from modelrepo_gen.repository.manifest import file_sha256, package_versions
from modelrepo_gen.repository.publish import MANIFEST


def export_key(export: ExportSpec, module: torch.nn.Module, settings: dict) -> str:
    digest = hashlib.sha256()
    described = {
        "generator": __version__,
        "packages": package_versions(),
        "exporter": export.exporter,
        "precision": export.precision,
        "tolerance": export.tolerance,
        "length_of": export.length_of,
        "inputs": [dataclasses.asdict(s) for s in export.inputs],
        "outputs": [dataclasses.asdict(s) for s in export.outputs],
        "settings": settings,
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    digest.update(Path(inspect.getfile(type(module))).read_bytes())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def reuse_previous(
    repository: Path, unit_name: str, artifact: str, key: str, target: Path
) -> dict | None:
    """Copy the artifact of `repository` (the one being replaced) if it was made with `key`.

    Returns its manifest entry (with the parity figures), or None when there is nothing to reuse.
    """
    try:
        manifest = json.loads((repository / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    entry = manifest.get("models", {}).get(unit_name, {})
    relative = f"{unit_name}/{target.parent.name}/{artifact}"
    source = repository / relative
    if entry.get("export_key") != key or not source.is_file():
        return None
    if file_sha256(source) != manifest.get("files", {}).get(relative):
        return None  # changed since it was built: export again
    shutil.copyfile(source, target)
    return entry
