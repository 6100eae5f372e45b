"""Stops a build cleanly on SIGINT (Ctrl-C), SIGTERM and SIGHUP.

The signal becomes a BuildInterrupted exception in the main thread, so the staging folder is
removed on the way out as after any failure, and the command exits 128 + the signal's number
(130, 143, 129), the status a shell reports for a process ended by that signal. While the
repository is swapped into place the signal waits for the swap to finish: output_dir is never
left half published. Signals the caller ignores (`nohup`) stay ignored.

Outside a build the command line's own handling applies (`stop_on_signals`, installed before
it imports torch or Hydra). Nothing is being written then, so the signal ends the process at
once, with the same one line and status; raised as an exception, it could land inside a C++
extension's callback while torch imports, and that aborts the process with a long trace. A
sweep raises (`raise_on_signals`): it stops with a summary of the variants it built.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from modelrepo_gen.core.errors import UserError

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


class Interrupted(KeyboardInterrupt):
    """A signal between the builds of a sweep. A KeyboardInterrupt: Hydra lets it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(str(BuildInterrupted(signum)))


# The command line's state, for its handlers: the repository a build has published, and the
# signal raised as Interrupted (in case a library swallowed it).
_published: Path | None = None
_raised: int | None = None


def stop_on_signals() -> None:
    """From now on, outside a build, SIGINT, SIGTERM and SIGHUP end the process at once.

    With one `error:` line and exit status 128 + N; for a command that writes nothing outside
    a build. Called first: importing torch and Hydra alone takes a second or more.
    """
    global _published, _raised
    _published, _raised = None, None
    _install(_exit_now)


def raise_on_signals() -> None:
    """From now on, outside a build, those signals raise Interrupted (for sweeps)."""
    _install(_raise)


def _install(handler: Callable[[int, FrameType | None], None]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # Python delivers signals to the main thread only
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    line = f"error: {BuildInterrupted(signum, _published)}\n"
    for stream in (sys.stdout, sys.stderr):  # what was printed before stays, in order
        with contextlib.suppress(Exception):  # e.g. interrupted in the middle of a print
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, line.encode())
    os._exit(128 + signum)


def _raise(signum: int, frame: FrameType | None) -> None:
    global _raised
    if _raised is not None:
        return  # already stopping: a second Ctrl-C must not break the one-line exit
    _raised = signum
    raise Interrupted(signum)


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
        global _published
        _published = published  # complete from here on, even if the command is interrupted
        if self.signum is not None:
            raise BuildInterrupted(self.signum, published)


@contextmanager
def interruptible() -> Iterator[Interrupts]:
    if _raised is not None:  # a library swallowed the Interrupted: still never build
        raise BuildInterrupted(_raised)
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
