"""Deploy: an archive becomes a model repository on the machine that will serve it.

With the build's protections: the repository is written in a staging folder beside OUTPUT and
swapped in whole, an existing OUTPUT is replaced only with force and only if this tool wrote
it, and a failed or interrupted deploy leaves the previous repository untouched.
"""

from __future__ import annotations

from pathlib import Path

from modelrepo_gen.archive.python_env import with_python_environment
from modelrepo_gen.archive.read import Archive
from modelrepo_gen.errors import UserError
from modelrepo_gen.repository.publish import (
    check_output_dir,
    check_output_location,
    publish,
    staging_folder,
    written_all_or_nothing,
)

TARGETS = ("cpu", "gpu")
FORCE = "--force"


def check_target(archive: Archive, target: str | None, where: str) -> str:
    """The target to deploy for: the archive's own unless another is asked for."""
    built_for = str(archive.index.get("target"))
    if target is None or target == built_for:
        return built_for
    raise UserError(
        f"{where} holds a repository built for target={built_for}; to serve it on "
        f"target={target}, build the archive with target={target}"
    )


def deployed_files(archive: Archive, python: str, where: str) -> dict[str, bytes]:
    """The repository to write: as built, or with its python models' packages for CPython
    `python` packed beside them ("none": as built, for a server whose Python has them)."""
    packages = dict(archive.index.get("python_packages", {}))
    if python == "none" or not packages:  # nothing to pack: numpy comes with the backend
        return archive.repository
    if python not in archive.wheels:
        carried = ", ".join(sorted(archive.wheels)) or "none"
        raise UserError(
            f"{where} carries the python models' packages for Python {carried}, not {python}: "
            f"build it with archive_python={python} (or a list), or deploy with "
            "--python-env none for a server whose Python has them"
        )
    return with_python_environment(archive.repository, archive.wheels[python], python, packages)


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
