"""Triton python-backend model code, copied into repositories as <model>/<version>/model.py.

Each file is self-contained (it runs inside Triton's python stub, which imports nothing of
modelrepo_gen) and keeps its logic in plain functions so it can be tested outside Triton.
"""

from pathlib import Path

COMPONENTS_DIR = Path(__file__).parent


def component_path(name: str) -> Path:
    return COMPONENTS_DIR / f"{name}.py"
