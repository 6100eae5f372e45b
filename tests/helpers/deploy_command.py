"""`python -m modelrepo_gen.deploy`, run as users run it (a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers.project import ROOT


def deploy(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run deploy with `args` (any path-like or str), `env` added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", "modelrepo_gen.deploy", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
