"""Keep a TritonServer serving: when tritonserver dies, say why and restart it.

Restarts reuse the same ports after a bounded exponential back-off (1, 2, 4 ... up to
``max_backoff_s`` seconds, growing with the crashes inside the window); more than
``max_restarts`` crashes within ``window_s`` seconds and it gives up with a UserError. A crash
removes what the dead server left (stub processes, shm regions, python_env and work folders)
before the next start. A request in flight when it dies gets a connection error; requests after
the restart get answers.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable

from modelrepo_gen.errors import UserError
from modelrepo_gen.serve.log import summarize_log_errors
from modelrepo_gen.serve.processes import exit_reason
from modelrepo_gen.serve.server import TritonServer

_POLL_S = 0.5


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
        self.restarts = 0
        self._crashes: deque[float] = deque()

    def watch(self) -> None:
        """Serve until interrupted; raise UserError when the server cannot be kept up."""
        while True:
            while self.server.is_running():
                time.sleep(_POLL_S)
            why = self._death_reason()
            self.server.stop()  # removes what the dead server left before anything new starts
            self._restart(f"tritonserver died ({why})")

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
