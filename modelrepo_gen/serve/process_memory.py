"""Peak memory of a running tritonserver and its python workers, from Linux's /proc.

Each process's peak resident memory (VmHWM) is reset (writing 5 to its clear_refs, which needs
the same user or root) before a request and read after it, so what one request costs shows
apart from what the server held before.
"""

from __future__ import annotations

from pathlib import Path

from modelrepo_gen.serve.server import TritonServer


def _processes(server: TritonServer) -> dict[int, str]:
    named = {pid: worker.instance for pid, worker in server.python_workers().items()}
    if server.pid is not None:
        named[server.pid] = "tritonserver"
    return named


def reset_peak_memory(server: TritonServer) -> None:
    """Start counting each process's peak from its present resident memory."""
    for pid in _processes(server):
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass  # gone, or not ours: its peak since start is read instead


def peak_memory_mib(server: TritonServer) -> dict[str, float]:
    """Peak resident memory in MiB per process: 'tritonserver' and each model instance."""
    peaks = {}
    for pid, name in _processes(server).items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[name] = int(line.split()[1]) / 1024  # kB
    return peaks
