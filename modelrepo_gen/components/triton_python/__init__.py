"""Triton python-backend model code, copied into repositories as <model>/<version>/model.py.

Each file is self-contained (it runs inside Triton's python stub, which imports nothing of
modelrepo_gen) and keeps its logic in plain functions so it can be tested outside Triton.
"""

from pathlib import Path

CODE_DIR = Path(__file__).parent


def code_path(name: str) -> Path:
    return CODE_DIR / f"{name}.py"
