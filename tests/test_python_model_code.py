"""A python-backend model's version folder holds all the code it needs: model.py and the
modules it imports, found from its imports (model_code), with nothing of modelrepo_gen
importable, as inside Triton's python stub."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelrepo_gen.components.triton_python import CODE_DIR, model_code

MODELS = sorted(p.stem for p in CODE_DIR.glob("*.py") if "class TritonPythonModel" in p.read_text())

# Imports model.py from the folder with Triton's utils stood in and modelrepo_gen unreachable.
IMPORT_ALONE = """
import importlib.util, sys
from modelrepo_gen.components.triton_python.python_backend_stand_in import stand_in_module
sys.modules["triton_python_backend_utils"] = stand_in_module(lambda request: None)
for name in [n for n in sys.modules if n.split(".")[0] == "modelrepo_gen"]:
    del sys.modules[name]

class Unreachable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "modelrepo_gen":
            raise ImportError(f"{name} is not importable inside Triton")

sys.meta_path.insert(0, Unreachable())
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("model", sys.argv[1] + "/model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert module.TritonPythonModel
"""


def test_every_model_is_found() -> None:
    assert len(MODELS) >= 10 and "text_task" in MODELS and "model_kernel" not in MODELS


@pytest.mark.parametrize("component", MODELS)
def test_the_copied_files_are_all_the_model_needs(component: str, tmp_path: Path) -> None:
    files = model_code(component)
    assert files["model.py"] == CODE_DIR / f"{component}.py"
    assert "model_kernel.py" in files  # how every model refuses a bad request
    for name, source in files.items():
        shutil.copyfile(source, tmp_path / name)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_missing_helper_is_noticed(tmp_path: Path) -> None:
    """The check above fails when a module the model imports is not beside it."""
    files = model_code("text_task")
    for name, source in files.items():
        if name != "text_answers.py":
            shutil.copyfile(source, tmp_path / name)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode != 0 and "not importable inside Triton" in done.stderr
