"""The Python packages a repository's python models import, as wheels for a target's Python.

Found by reading the models' code (every `import` in each model folder's .py files), so a new
component needs no list kept by hand. numpy is left out: the Triton python backend itself needs
it, so the serving Python always has it. Versions are the ones installed here (the project's
pins). torch is left out too: only TorchScript networks need it, and a self-contained
repository is meant for ONNX networks (deploy says so for a TorchScript one).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from modelrepo_gen.core.errors import UserError

PROVIDED_BY_TRITON = {"numpy", "triton_python_backend_utils"}
NOT_PACKED = {"torch"}
# Wheels that run on any Linux x86-64 with glibc 2.17 or newer (NVIDIA's containers included).
# Modules a package imports when it is imported, though the models never name them: piper's
# package imports onnxruntime (its voice runner) even for its phonemizer alone.
IMPORTED_WITH = {"piper": ("onnxruntime",)}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def imported_modules(repository: Path) -> set[str]:
    """Top-level names imported by the python models' code, minus their own helper files."""
    names: set[str] = set()
    for model_dir in sorted(p for p in repository.glob("*/*") if p.is_dir()):
        local = {path.stem for path in model_dir.glob("*.py")}
        for path in sorted(model_dir.glob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            # `except ImportError:` fallbacks (the package's own path, for tests) never run
            # inside Triton, where each helper sits beside model.py.
            fallbacks = {
                id(inner)
                for handler in ast.walk(tree)
                if isinstance(handler, ast.ExceptHandler)
                for inner in ast.walk(handler)
            }
            for node in ast.walk(tree):
                if id(node) in fallbacks:
                    continue
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
        names -= local
    return names - set(sys.stdlib_module_names) - {"__future__"}


def required_distributions(repository: Path) -> dict[str, str]:
    """Distribution name -> installed version, for what the python models import."""
    owners = metadata.packages_distributions()
    wanted: dict[str, str] = {}
    modules = imported_modules(repository)
    modules |= {also for module in modules for also in IMPORTED_WITH.get(module, ())}
    for module in sorted(modules - PROVIDED_BY_TRITON - NOT_PACKED):
        if module not in owners:
            raise UserError(
                f"the python models import '{module}', which is not installed here: "
                "install the project's requirements before building an archive"
            )
        for distribution in owners[module]:
            wanted[distribution] = metadata.version(distribution)
    return wanted


def download_wheels(distributions: dict[str, str], python: str, folder: Path) -> list[Path]:
    """Binary wheels of `distributions` for CPython `python` (e.g. "3.11") into `folder`.

    From the package index pip is configured with (a local mirror works offline).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not distributions:  # e.g. target=gpu: the networks run on Triton's own backends
        return []
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python, "--dest", str(folder),
        *[f"--platform={platform}" for platform in PLATFORMS],
        *[f"{name}=={version}" for name, version in sorted(distributions.items())],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = next(
            (line for line in done.stderr.splitlines() if line.startswith("ERROR")),
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed",
        )
        raise UserError(f"cannot get the python models' packages for Python {python}: {reason}")
    return sorted(folder.glob("*.whl"))
