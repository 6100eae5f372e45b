"""Process, port and shared-memory helpers for running the Triton server (Linux /proc)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

HOST = "127.0.0.1"
SHM_PREFIX = "triton_python_backend_shm_region_"
SHM_DIR = Path("/dev/shm")

try:  # resolved once here so the forked child only makes a plain call (no dlopen after fork)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # The server must not outlive a Python process that is killed without running stop().
    # Note: PDEATHSIG fires when the *thread* that started the server ends.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port(taken: Collection[int] = ()) -> int:
    """A free port on HOST that is none of `taken` (the kernel may hand out a port again as
    soon as the socket that asked for it closes)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``: the server and its stubs."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def shm_regions_of(pids: Sequence[int]) -> set[str]:
    regions = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            name = line.rsplit("/", 1)[-1]
            if "/dev/shm/" in line and name.startswith(SHM_PREFIX):
                regions.add(name.removesuffix(" (deleted)"))
    return regions


def kill_group(pgid: int, timeout_s: float = 5) -> None:
    """SIGKILL every process of group ``pgid`` and wait until they are gone."""
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)  # SIGKILL is delivered asynchronously


def remove_leftovers(shm_regions: Iterable[str], empty_dirs: Iterable[str]) -> None:
    """Remove shm regions and (only if empty) folders that a dead server could not remove."""
    for region in shm_regions:
        (SHM_DIR / region).unlink(missing_ok=True)
    for folder in empty_dirs:
        with contextlib.suppress(OSError):  # gone already, or not empty: in use, not ours
            os.rmdir(folder)


def exit_reason(returncode: int) -> str:
    """``SIGSEGV`` for a process killed by a signal, ``exit code 3`` otherwise."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"
