"""An object whose unpickling runs a shell command: what a malicious checkpoint holds."""

from __future__ import annotations

import os


class RunsCode:
    """Pickles as a call of os.system: unpickling it runs `command`."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)
