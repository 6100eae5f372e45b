"""What one tritonserver launch leaves behind if it dies uncleanly, and removing it.

A clean exit removes the python backend's shm regions and its (empty) /tmp/python_env_XXXXXX
folder; a crash, SIGKILL or a failed start does not. Shm regions are known from the maps of
the server's processes while they live. A python_env folder names no owner, so this launch's
is the one made between its start and its READY (or its end), compared by modification time.
"""

from __future__ import annotations

import glob
import os
import time

from modelrepo_gen.serve.processes import group_members, remove_leftovers, shm_regions_of

_PYTHON_ENV_GLOB = "/tmp/python_env_*"


class LaunchLeftovers:
    def __init__(self) -> None:
        self._before = set(glob.glob(_PYTHON_ENV_GLOB))
        self._launched_at = time.time()
        self._shm_regions: set[str] = set()
        self._python_env_dirs: set[str] | None = None  # fixed once the server is ready

    def note_processes(self, pgid: int) -> None:
        """Remember the shm regions the server's processes have mapped now."""
        self._shm_regions |= shm_regions_of(group_members(pgid))

    def note_ready(self, pgid: int) -> list[str]:
        """At READY: remember regions and this launch's python_env folders (returned)."""
        self.note_processes(pgid)
        self._python_env_dirs = self._python_envs_made_until(time.time())
        return sorted(self._python_env_dirs)

    def remove(self) -> None:
        """After the server's process group is gone: remove what it could not."""
        env_dirs = self._python_env_dirs
        if env_dirs is None:  # never ready: its folder, if any, was made before now
            env_dirs = self._python_envs_made_until(time.time())
        remove_leftovers(self._shm_regions, env_dirs)

    def _python_envs_made_until(self, until: float) -> set[str]:
        new = set(glob.glob(_PYTHON_ENV_GLOB)) - self._before
        return {d for d in new if self._launched_at - 1 <= _mtime(d) <= until + 1}


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
