"""Runs `python -m modelrepo_gen` many times in one process, to test many bad inputs quickly.

Each run goes through the same entry point as the command line (runpy, as `python -m` does),
with its own argv; its exit code, stdout and stderr are collected. Used as a script:
    python tests/cli_runs.py < runs.json > results.json
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path


def run_many(runs: list[list[str]], cwd: Path) -> list[dict]:
    """[{code, stdout, stderr}] of each argument list, in one fresh interpreter."""
    result = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(runs),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _main() -> None:
    results = []
    for args in json.load(sys.stdin):
        sys.argv = ["modelrepo_gen", *args]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_module("modelrepo_gen", run_name="__main__", alter_sys=True)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    json.dump(results, sys.__stdout__)


if __name__ == "__main__":
    _main()
