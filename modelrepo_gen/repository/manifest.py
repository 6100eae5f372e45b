"""The manifest at the repository root: config, versions, weights, parity figures, file hashes."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from modelrepo_gen import __version__

MANIFEST = "manifest.json"
GENERATOR = "modelrepo_gen"
# Layout version of the repositories this tool writes, recorded beside the generator's name.
REPOSITORY_FORMAT = 1

PACKAGES = ("torch", "onnx", "onnxruntime", "numpy", "hydra-core", "jinja2", "tritonclient")
# Keys that say where and how to write, not what is built: kept out so a repository's bytes
# depend only on what it holds.
WRITE_OPTIONS = (
    "output_dir",
    "force",
    "dry_run",
    "archive",
    "archive_key_file",
    "archive_key_env",
    "archive_python",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    hashes = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative != MANIFEST:
            hashes[relative] = file_sha256(path)
    return hashes


def file_hashes_of(files: dict[str, bytes]) -> dict[str, str]:
    """file_hashes of a repository held in memory (relative path -> content)."""
    return {name: hashlib.sha256(files[name]).hexdigest() for name in sorted(files)}


def write_manifest(
    root: Path,
    config: dict[str, Any],
    notes: list[str],
    weights: dict[str, Any],
    models: dict[str, Any],
) -> None:
    manifest = {
        "generator": {
            "name": GENERATOR,
            "repository_format": REPOSITORY_FORMAT,
            "version": __version__,
        },
        "packages": package_versions(),
        "config": {k: v for k, v in config.items() if k not in WRITE_OPTIONS},
        "notes": notes,
        "weights": weights,
        "models": models,
        "files": file_hashes(root),
    }
    (root / MANIFEST).write_bytes(manifest_bytes(manifest))


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def with_manifest(files: dict[str, bytes], manifest: dict[str, Any]) -> dict[str, bytes]:
    """A repository held in memory (relative path -> content) with `manifest`, its file hashes
    made again from `files` (deploy changes files after the build: engines, the environment)."""
    listed = {name: content for name, content in files.items() if name != MANIFEST}
    manifest["files"] = file_hashes_of(listed)
    return {**listed, MANIFEST: manifest_bytes(manifest)}
