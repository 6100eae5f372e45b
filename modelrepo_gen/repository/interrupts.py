"""Stops a build cleanly on SIGINT (Ctrl-C), SIGTERM and SIGHUP.

The signal becomes a BuildInterrupted exception in the main thread, so the staging folder is
removed on the way out as after any failure, and the command exits 128 + the signal's number
(130, 143, 129), the status a shell reports for a process ended by that signal. While the
repository is swapped into place the signal waits for the swap to finish: output_dir is never
left half published. Signals the caller ignores (`nohup`) stay ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from modelrepo_gen.errors import UserError

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class BuildInterrupted(UserError):
    def __init__(self, signum: int, published: Path | None = None) -> None:
        self.exit_code = 128 + signum
        outcome = (
            "nothing was written"
            if published is None
            else f"the repository at {published} was complete before it stopped"
        )
        super().__init__(f"build interrupted by {signal.Signals(signum).name}; {outcome}")


class Interrupts:
    """The signal that interrupted the build, if any, and the window where signals wait."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._waiting = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return  # already stopping: let the clean-up finish
        self.signum = signum
        if not self._waiting:
            raise BuildInterrupted(signum)

    @contextmanager
    def held(self, published: Path) -> Iterator[None]:
        """Signals received inside wait until the block has finished publishing `published`."""
        if self.signum is not None:  # a library swallowed the exception: still never publish
            raise BuildInterrupted(self.signum)
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False
        if self.signum is not None:
            raise BuildInterrupted(self.signum, published)


@contextmanager
def interruptible() -> Iterator[Interrupts]:
    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts  # Python delivers signals to the main thread only
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, interrupts.handle)
    try:
        yield interrupts
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
