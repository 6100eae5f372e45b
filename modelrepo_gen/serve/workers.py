"""The python backend's worker processes of a running tritonserver, and which model each serves.

Every instance of a python-backend model runs in its own stub process, a child of the server in
its process group. Triton does not notice when one dies (killed for memory, say): the model
stays READY and answers every request with `Stub process '...' is not healthy`. Watching the
workers is how the supervisor finds that out.

The stub's command line is `triton_python_backend_stub <repository>/<model>/<version>/model.py
<shm region> <shm sizes> <server pid> <backend folder> <ipc handle> <instance name> ...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.serve.processes import group_members

STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class Worker:
    pid: int
    model: str  # the model (its folder in the repository)
    instance: str  # Triton's instance name, e.g. tts_piper_voice_0_0


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])  # after "pid (comm) state"


def python_workers(pgid: int) -> dict[int, Worker]:
    """The live python-backend workers of the server whose process group is `pgid` (and whose
    pid it is), by pid. Only the server's own children count: a process a worker forks (to run
    espeak-ng, say) bears the worker's command line until it runs its program."""
    workers = {}
    for pid in group_members(pgid):
        args = _command_line(pid)
        if len(args) > 8 and Path(args[0]).name == STUB and _parent(pid) == pgid:
            model_file = Path(args[1])  # <model>/<version>/model.py
            workers[pid] = Worker(pid=pid, model=model_file.parent.parent.name, instance=args[8])
    return workers
