"""Packages the top-level conf/, templates/ and recipes/ inside the wheel, as modelrepo_gen/_data.

They stay where the project keeps them; only the built package carries copies, so an installed
modelrepo_gen finds them wherever it runs (modelrepo_gen/core/resources.py). An editable install
reads them from the checkout instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("conf", "templates", "recipes")


class BuildWithProjectFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib) / "modelrepo_gen" / "_data"
        shutil.rmtree(data, ignore_errors=True)
        for name in DATA_FOLDERS:
            # symlinks=False: conf/recipe (a link to recipes/) becomes a real folder
            shutil.copytree(ROOT / name, data / name, symlinks=False)


setup(cmdclass={"build_py": BuildWithProjectFiles})
