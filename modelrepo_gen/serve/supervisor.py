"""Keep a TritonServer serving: when tritonserver dies, or a model's python worker dies, say why
and bring it back.

Two things are watched, every quarter of a second:
- the tritonserver process. When it dies, what it left (stub processes, shm regions,
  python_env and work folders) is removed and it is started again on the same ports.
- every python-backend worker (one process per model instance). Triton keeps a model whose
  worker died READY, answering every request with "Stub process ... is not healthy", and says
  the server is ready. So the model is unloaded at once (the ensembles that use it go with it,
  and /v2/health/ready says not ready), then loaded again; a model that cannot be loaded again
  restarts the server.
Both count as restarts: after a bounded exponential back-off (1, 2, 4 ... up to
``max_backoff_s`` seconds, growing with the restarts inside the window); more than
``max_restarts`` within ``window_s`` seconds and it gives up with a UserError. A request in
flight when a worker or the server dies gets an error (never a wrong answer); requests after
the recovery get answers.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import urllib.error
from collections import deque
from collections.abc import Callable

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.log import summarize_log_errors
from modelrepo_gen.serve.processes import exit_reason
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.serve.workers import Worker

_POLL_S = 0.25
_UNLOAD_WAIT_S = 3.0
_UNREACHABLE = (urllib.error.URLError, OSError, ValueError)  # a server dying under our calls


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Supervisor:
    def __init__(
        self,
        server: TritonServer,
        max_restarts: int = 5,
        window_s: float = 300,
        max_backoff_s: float = 30,
        report: Callable[[str], None] = _to_stderr,
    ) -> None:
        self.server = server
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.max_backoff_s = max_backoff_s
        self.report = report
        self.restarts = 0  # server restarts and model reloads
        self._crashes: deque[float] = deque()
        self._workers: dict[int, Worker] = {}

    def watch(self, stop: threading.Event | None = None) -> None:
        """Serve until interrupted (or `stop` is set); raise UserError when the server cannot
        be kept up."""
        self._workers = self.server.python_workers()
        while stop is None or not stop.is_set():
            time.sleep(_POLL_S)
            if not self.server.is_running():
                why = self._death_reason()
                self.server.stop()  # removes what the dead server left before anything new
                self._restart(f"tritonserver died ({why})")
                self._workers = self.server.python_workers()
                continue
            try:
                self._heal_dead_workers()
            except _UNREACHABLE:
                continue  # the server is going down: the next round restarts it

    # -- python workers --------------------------------------------------------------------
    def _heal_dead_workers(self) -> None:
        alive = self.server.python_workers()
        gone = [w for pid, w in self._workers.items() if pid not in alive]
        self._workers = {**self._workers, **alive}
        if not gone:
            return
        states = {e["name"]: e.get("state") for e in self.server.repository_index()}
        # A worker of a model that is no longer READY went with an unload (someone's, or ours).
        dead = [w for w in gone if states.get(w.model) == "READY"]
        for worker in gone:
            del self._workers[worker.pid]
        for model in sorted({w.model for w in dead}):
            instances = ", ".join(sorted(w.instance for w in dead if w.model == model))
            self._reload(model, f"python worker {instances} of model '{model}' died")
        if dead and self.server.is_running():
            self._workers = self.server.python_workers()

    def _reload(self, model: str, what_happened: str) -> None:
        # Unloaded first, so nothing answers "not healthy" and health/ready says not ready.
        self.server.unload_model(model)
        delay = self._count_crash(what_happened)
        self.report(f"{what_happened}; reloading it in {delay:g} s")
        unloading_since = time.monotonic()
        time.sleep(delay)
        if not self._unloaded(model, unloading_since + _UNLOAD_WAIT_S - time.monotonic()):
            # Requests queued for the dead worker never end, and Triton waits for them: the
            # model's other workers would be left running beside the new ones. They are being
            # unloaded anyway.
            for worker in self.server.python_workers().values():
                if worker.model == model:
                    os.kill(worker.pid, signal.SIGKILL)
            self._unloaded(model, _UNLOAD_WAIT_S)
        try:
            self.server.load_model(model)
        except UserError as error:
            self.report(f"model '{model}' could not be reloaded ({error}); restarting the server")
            self.server.stop()
            self._restart(f"model '{model}' could not be reloaded")
            return
        self.restarts += 1
        self.report(f"model '{model}' reloaded and ready (restarts: {self.restarts})")

    def _unloaded(self, model: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._state(model) == "UNLOADING":
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def _state(self, model: str) -> str:
        states = {e["name"]: e.get("state", "") for e in self.server.repository_index()}
        return states.get(model, "")

    # -- the server ------------------------------------------------------------------------
    def _death_reason(self) -> str:
        returncode = self.server.returncode
        if returncode is None:
            return "stopped"
        if returncode > 0:  # it exited by itself: its log says why (a signal leaves frames)
            return f"{exit_reason(returncode)}: {summarize_log_errors(self.server.read_log())}"
        return exit_reason(returncode)

    def _restart(self, what_happened: str) -> None:
        while True:
            delay = self._count_crash(what_happened)
            self.report(f"{what_happened}; restarting in {delay:g} s")
            time.sleep(delay)
            try:
                self.server.start(same_ports=True)
            except UserError as error:
                what_happened = f"restart failed: {error}"
                continue
            self.restarts += 1
            self.report(
                f"tritonserver restarted on {self.server.http_url} (restarts: {self.restarts})"
            )
            return

    def _count_crash(self, what_happened: str) -> float:
        """Record one crash; the back-off before the next start, or UserError to give up."""
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - self.window_s:
            self._crashes.popleft()
        if len(self._crashes) > self.max_restarts:
            limit = (
                "restarts are off (--max-restarts 0)"
                if self.max_restarts == 0
                else f"giving up after {len(self._crashes)} crashes within {self.window_s:g} s"
            )
            raise UserError(f"{what_happened}; {limit} (restarts: {self.restarts})")
        return min(self.max_backoff_s, 2.0 ** (len(self._crashes) - 1))
