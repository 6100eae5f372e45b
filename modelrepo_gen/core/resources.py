"""Where the project's own files are: conf/, templates/ and recipes/.

An installed wheel carries them inside the package (modelrepo_gen/_data, written by setup.py);
a checkout, and an editable install of it, has them as its top-level folders.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[1] / "_data"
CHECKOUT = Path(__file__).resolve().parents[2]


def project_folder(name: str) -> Path:
    """conf, templates or recipes, wherever this installation keeps them."""
    packaged = PACKAGED / name
    return packaged if packaged.is_dir() else CHECKOUT / name


def pipeline_names() -> list[str]:
    """Every pipeline the build knows (conf/pipeline/*.yaml)."""
    return sorted(path.stem for path in (project_folder("conf") / "pipeline").glob("*.yaml"))
