"""Runs `python -m modelrepo_gen` as users run it: once in a fresh process (run_cli), or many
times in one process, to test many bad inputs quickly (run_many).

Each run goes through the same entry point as the command line (runpy, as `python -m` does),
with its own argv, and optionally its own working folder and environment variables; its exit
code, stdout and stderr are collected. Used as a script:
    python tests/helpers/cli_runs.py < runs.json > results.json
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m modelrepo_gen ARGS` in a fresh process (in the checkout unless `cwd`)."""
    return subprocess.run(
        [sys.executable, "-m", "modelrepo_gen", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@dataclass
class CliRun:
    args: list[str]
    cwd: str | None = None  # the interpreter's own when None
    env: dict[str, str] = field(default_factory=dict)  # set for this run only


def run_many(runs: list[list[str] | CliRun], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Each run (an argument list or a CliRun) in one fresh interpreter started in `cwd`: its
    exit code, stdout and stderr, as a separate `python -m modelrepo_gen` would give them."""
    runs = [run if isinstance(run, CliRun) else CliRun(list(run)) for run in runs]
    result = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps([asdict(run) for run in runs]),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return [
        subprocess.CompletedProcess(run.args, r["code"], r["stdout"], r["stderr"])
        for run, r in zip(runs, json.loads(result.stdout), strict=True)
    ]


def _run(run: CliRun) -> dict:
    sys.argv = ["modelrepo_gen", *run.args]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("modelrepo_gen", run_name="__main__", alter_sys=True)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _main() -> None:
    results = []
    home, environment = os.getcwd(), dict(os.environ)
    for record in json.load(sys.stdin):
        run = CliRun(**record)
        os.chdir(run.cwd or home)
        os.environ.update(run.env)
        try:
            results.append(_run(run))
        finally:
            os.environ.clear()
            os.environ.update(environment)
    os.chdir(home)
    json.dump(results, sys.__stdout__)


if __name__ == "__main__":
    _main()
