"""Triton python-backend model code, copied into repositories as <model>/<version>/model.py.

Each file runs inside Triton's python stub, which imports nothing of modelrepo_gen: what it
needs of this folder (model_kernel.py, text_windows.py, ...) is copied beside it, found from
its imports. Logic stays in plain functions so it can be tested outside Triton.
"""

from __future__ import annotations

import ast
from pathlib import Path

CODE_DIR = Path(__file__).parent
PACKAGE = __name__


def code_path(name: str) -> Path:
    return CODE_DIR / f"{name}.py"


def _sibling_imports(path: Path) -> set[str]:
    """The modules of this folder that `path` imports, by either name: `helper` (beside
    model.py in a repository) or `modelrepo_gen.components.triton_python.helper`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        for module in modules:
            name = module.removeprefix(f"{PACKAGE}.")
            if "." not in name and code_path(name).is_file():
                names.add(name)
    return names


def model_code(component: str) -> dict[str, Path]:
    """The files a python-backend model's version folder needs: its code as model.py, and
    every module of this folder it imports, directly or through another."""
    found: set[str] = set()
    pending = _sibling_imports(code_path(component))
    while pending:
        name = pending.pop()
        if name not in found and name != component:
            found.add(name)
            pending |= _sibling_imports(code_path(name))
    return {"model.py": code_path(component), **{f"{n}.py": code_path(n) for n in sorted(found)}}
