"""A repository whose python models need nothing installed on the server but Triton.

Deploy packs the wheels the archive carries for the serving Python into one environment file at
the repository root (Triton loads only folders as models), and points every python model at it
with Triton's EXECUTION_ENV_PATH: the python backend unpacks it once and sources its
`bin/activate`, which puts the packages in front of the server Python's own.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from typing import Any

from modelrepo_gen.assembly.render import (
    parse_model_config,
    render_env_activate,
    render_execution_env,
)
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.manifest import MANIFEST, with_manifest

ENV_FILE = "python_env.tar.gz"


def environment_tarball(wheels: dict[str, bytes], python: str) -> bytes:
    """The environment: bin/activate and the wheels unpacked into lib/pythonX.Y/site-packages."""
    files = {"bin/activate": render_env_activate(python).encode()}
    site = f"lib/python{python}/site-packages"
    for name in sorted(wheels):
        with zipfile.ZipFile(io.BytesIO(wheels[name])) as wheel:
            for member in wheel.infolist():
                if not member.is_dir():
                    files[f"{site}/{member.filename}"] = wheel.read(member)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(files[path]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[path]))
    return gzip.compress(buffer.getvalue(), compresslevel=1, mtime=0)


def with_python_environment(
    repository: dict[str, bytes], wheels: dict[str, bytes], python: str, packages: dict
) -> dict[str, bytes]:
    """`repository` (path -> content) with the environment added and used by its python models."""
    manifest: dict[str, Any] = json.loads(repository[MANIFEST])
    torchscript = [
        name
        for name, entry in manifest["models"].items()
        if entry.get("format") == "torchscript" and entry.get("platform") == "python"
    ]
    if torchscript:
        raise UserError(
            f"{', '.join(sorted(torchscript))} run TorchScript, which needs torch, and deploy "
            "does not pack torch: build with backend=onnx, or deploy with --python-env none "
            "for a server whose Python has torch"
        )
    files = dict(repository)
    files[ENV_FILE] = environment_tarball(wheels, python)
    for name, entry in sorted(manifest["models"].items()):
        if entry.get("platform") != "python":
            continue
        config = f"{name}/config.pbtxt"
        text = files[config].decode() + render_execution_env(ENV_FILE)
        parse_model_config(text, name)  # still a valid model config for Triton
        files[config] = text.encode()
    manifest["python_environment"] = {"file": ENV_FILE, "python": python, "packages": packages}
    return with_manifest(files, manifest)
