"""Deploy: an archive becomes a model repository on the machine that will serve it.

With the build's protections: the repository is written in a staging folder beside OUTPUT and
swapped in whole, an existing OUTPUT is replaced only with force and only if this tool wrote
it, and a failed or interrupted deploy leaves the previous repository untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from modelrepo_gen.archive.container import damaged
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.deployment.python_env import with_python_environment
from modelrepo_gen.repository.publish import (
    check_output_dir,
    check_output_location,
    publish,
    staging_folder,
    written_all_or_nothing,
)

FORCE = "--force"


def deployed_files(
    files: dict[str, bytes],
    packages: dict[str, str],
    wheels: dict[str, dict[str, bytes]],
    python: str,
    where: str,
) -> dict[str, bytes]:
    """The repository `files` to write: as they are, or with the python models' `packages`
    packed beside them for CPython `python` ("none": for a server whose Python has them)."""
    if python == "none" or not packages:  # nothing to pack: numpy comes with the backend
        return files
    if python not in wheels:
        carried = ", ".join(sorted(wheels)) or "none"
        raise UserError(
            f"{where} carries the python models' packages for Python {carried}, not {python}: "
            f"build it with archive_python={python} (or a list), or deploy with "
            "--python-env none for a server whose Python has them"
        )
    wanted = {_normal(name) for name in packages}
    chosen = {
        name: content
        for name, content in wheels[python].items()
        if _normal(name.split("-")[0]) in wanted
    }
    missing = wanted - {_normal(name.split("-")[0]) for name in chosen}
    if missing:
        missing_names = ", ".join(sorted(missing))
        raise damaged(where, f"it carries no wheel of {missing_names} for Python {python}")
    return with_python_environment(files, chosen, python, packages)


def _normal(distribution: str) -> str:
    """A distribution's name as wheel file names write it (PEP 427)."""
    return re.sub(r"[-_.]+", "_", distribution).lower()


def check_output(output: Path, force: bool) -> None:
    """Before the archive is read: OUTPUT may be written."""
    check_output_location(str(output), output)
    check_output_dir(output, force, FORCE)


def write_repository(
    files: dict[str, bytes], empty_folders: list[str], output: Path, force: bool
) -> None:
    """Write the repository `files` (path -> content) at `output`, all or nothing."""
    with written_all_or_nothing(output) as interrupts:
        check_output_dir(output, force, FORCE)
        with staging_folder(output) as staging:
            for name, content in sorted(files.items()):
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            for folder in empty_folders:
                (staging / folder).mkdir(parents=True, exist_ok=True)
            with interrupts.held(output):
                publish(staging, output, force, FORCE)
