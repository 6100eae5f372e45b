"""Send a served pipeline the largest request its limits allow, and record what it cost.

Each process's peak resident memory (tritonserver and every python worker) is reset before
the request and read after it; the figures are listed at the end of the test run (conftest)
and must stay under MEMORY_BUDGET_MIB for the small test builds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelrepo_gen.serve.process_memory import peak_memory_mib, reset_peak_memory
from modelrepo_gen.serve.server import TritonServer

# The whole server, all models loaded, during the request: a sum of each process's peak, so
# an upper bound (the peaks need not coincide, and shared memory counts in every process).
MEMORY_BUDGET_MIB = 6144


@dataclass(frozen=True)
class LargestRequest:
    pipeline: str
    request: str
    seconds: float
    peak_mib: float  # the server and its workers together
    largest_process: str


RECORDED: list[LargestRequest] = []


def send_largest(
    server: TritonServer, pipeline: str, request: str, send: Callable[[], Any]
) -> tuple[Any, LargestRequest]:
    """send() on a server whose peak memory counts from now; the answer and its cost."""
    reset_peak_memory(server)
    started = time.monotonic()
    answer = send()
    seconds = time.monotonic() - started
    peaks = peak_memory_mib(server)
    record = LargestRequest(
        pipeline, request, seconds, sum(peaks.values()), max(peaks, key=peaks.get)
    )
    RECORDED.append(record)
    assert record.peak_mib < MEMORY_BUDGET_MIB, (record, peaks)
    return answer, record
