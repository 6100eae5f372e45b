"""Kill -9 a python worker of a served pipeline under load, with the supervisor watching.

Clients send requests in a loop while one worker of the chosen model is killed. Every answer is
checked: an answer is either right or an error, never wrong; the supervisor reports the dead
worker and reloads its model; the endpoint answers right again within seconds, and keeps
answering after the recovery.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers.served_requests import BAD_REQUEST
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.serve.supervisor import Supervisor

RECOVERY_S = 60  # a model reload (torch or onnxruntime imported again) on a busy 2-core machine


@dataclass
class FaultOutcome:
    right: int = 0
    errors: list[str] = field(default_factory=list)
    wrong: list[Any] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    recovered_after_s: float | None = None  # from the kill to the first right answer after it
    right_after_recovery: int = 0


def kill_a_worker_under_load(
    server: TritonServer,
    model: str,
    request: Callable[[], Any],
    is_right: Callable[[Any], bool],
    clients: int = 3,
) -> FaultOutcome:
    """Kill one python worker of `model` while `clients` threads send `request()`; wait for the
    supervisor's reload and for right answers after it."""
    outcome = FaultOutcome()
    stop_load, stop_watch = threading.Event(), threading.Event()
    lock = threading.Lock()
    killed_at: list[float] = []
    reloaded = threading.Event()

    def report(line: str) -> None:
        outcome.reports.append(line)
        if line.startswith(f"model '{model}' reloaded"):
            reloaded.set()

    supervisor = Supervisor(server, max_restarts=3, report=report)
    watcher = threading.Thread(target=supervisor.watch, args=(stop_watch,), daemon=True)
    watcher.start()

    def load() -> None:
        while not stop_load.is_set():
            try:
                answer = request()
            except Exception as error:  # noqa: BLE001 - every failure is counted, none hidden
                status = str(error.status()) if hasattr(error, "status") else "no status"
                with lock:
                    outcome.errors.append(f"{status} {str(error).splitlines()[0][:200]}")
                continue
            with lock:
                if not is_right(answer):
                    outcome.wrong.append(answer)
                    continue
                outcome.right += 1
                if reloaded.is_set():
                    outcome.right_after_recovery += 1
                if killed_at and outcome.recovered_after_s is None and reloaded.is_set():
                    outcome.recovered_after_s = time.monotonic() - killed_at[0]

    senders = [threading.Thread(target=load, daemon=True) for _ in range(clients)]
    try:
        for sender in senders:
            sender.start()
        time.sleep(1.0)  # requests in flight
        workers = [w for w in server.python_workers().values() if w.model == model]
        assert workers, f"no python worker of {model}: {server.python_workers()}"
        killed_at.append(time.monotonic())
        os.kill(workers[0].pid, 9)
        assert reloaded.wait(RECOVERY_S), f"no reload reported: {outcome.reports}"
        deadline = time.monotonic() + RECOVERY_S
        while outcome.right_after_recovery < 3 * clients and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_load.set()
        for sender in senders:
            sender.join(60)
        stop_watch.set()
        watcher.join(10)
    return outcome


def assert_healed(outcome: FaultOutcome, model: str) -> None:
    assert outcome.wrong == [], f"wrong answers: {outcome.wrong[:3]}"
    # The requests were good: a dead worker is the server's fault, never a bad request.
    assert not [e for e in outcome.errors if e.split()[0] in BAD_REQUEST.values()], outcome.errors
    assert outcome.reports[0].startswith("python worker "), outcome.reports
    assert f"of model '{model}' died; reloading it in 1 s" in outcome.reports[0]
    assert outcome.reports[-1] == f"model '{model}' reloaded and ready (restarts: 1)"
    assert outcome.recovered_after_s is not None and outcome.recovered_after_s < RECOVERY_S
    assert outcome.right_after_recovery >= 3, outcome
