"""A watchdog that cleans up after a tritonserver whose owner was killed (e.g. ``kill -9``).

The owner keeps the write end of a pipe and the reaper, in its own session, blocks reading the
other end. A clean stop writes ``done``; end-of-file without it means the owner died. The
server then gets SIGTERM from the kernel (``die_with_parent``) and exits on its own; the reaper
waits for that, kills what is left of its process group, and removes its shm regions, its
python_env folders and its work folder, so nothing waits for the next start to be swept.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelrepo_gen.serve.processes import (
    group_members,
    kill_group,
    remove_leftovers,
    shm_regions_of,
)

_DONE = "done"
_ENV = "env "


class Reaper:
    """Owner side: starts the watchdog for one server launch; ``release()`` on a clean stop."""

    def __init__(self, pgid: int, work_dir: Path, grace_s: float) -> None:
        read_end, self._write_end = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "modelrepo_gen.serve.reaper", str(read_end), str(pgid),
                 str(work_dir), str(grace_s)],
                pass_fds=(read_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,  # Ctrl-C or a kill of our group does not reach it
                env={**os.environ, "PYTHONPATH": _package_parent()},
            )  # fmt: skip
        finally:
            os.close(read_end)

    def note_python_env_dirs(self, dirs: Iterable[str]) -> None:
        self._send("".join(f"{_ENV}{folder}\n" for folder in dirs))

    def release(self) -> None:
        """The owner cleaned up itself: the watchdog exits without touching anything."""
        if self._write_end < 0:
            return
        self._send(f"{_DONE}\n")
        os.close(self._write_end)
        self._write_end = -1
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _send(self, text: str) -> None:
        if text and self._write_end >= 0:
            os.write(self._write_end, text.encode())


def _package_parent() -> str:
    # The watchdog must import this very package, also from a source checkout.
    parent = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH")
    return os.pathsep.join([parent, rest]) if rest else parent


def _read_messages(fd: int) -> tuple[bool, list[str]]:
    """Block until the owner ends the pipe: (clean stop?, python_env folders it reported)."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    lines = data.decode(errors="replace").splitlines()
    env_dirs = [line[len(_ENV) :] for line in lines if line.startswith(_ENV)]
    return _DONE in lines, env_dirs


def _clean_after(pgid: int, work_dir: Path, grace_s: float, env_dirs: list[str]) -> None:
    regions: set[str] = set()
    deadline = time.monotonic() + grace_s
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        regions |= shm_regions_of(members)  # known while they live, removed if they cannot
        time.sleep(0.2)
    kill_group(pgid)
    remove_leftovers(regions, env_dirs)
    shutil.rmtree(work_dir, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, pgid, work_dir, grace_s = int(argv[0]), int(argv[1]), Path(argv[2]), float(argv[3])
    clean_stop, env_dirs = _read_messages(fd)
    if not clean_stop:
        _clean_after(pgid, work_dir, grace_s, env_dirs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
