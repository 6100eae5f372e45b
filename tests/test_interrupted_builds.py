"""Builds killed or interrupted at known points: real processes, real signals, real leftovers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli_runs import run_cli
from helpers.project import ROOT, compose_config

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.repository.ownership import check_replaceable

# Run alone, after the tests that share the machine (make test): real signals at moments of a
# real build, kept away from a loaded machine's delays.
pytestmark = pytest.mark.serial

SMALL = ["model=quartznet_mini"]
PAUSED_BUILD = Path(__file__).parent / "helpers" / "paused_build.py"


def signals_as_in_a_terminal() -> None:
    """In the child before it runs: default handling of the signals under test, even when the
    test run itself was started in the background or under nohup (which ignore SIGINT, SIGHUP)
    and the build, by design, keeps ignoring what it inherits ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class PausedBuild:
    """`python -m modelrepo_gen` in a child process, stopped at `where` (see paused_build.py)."""

    def __init__(self, tmp_path: Path, where: str, *overrides: str) -> None:
        control = tmp_path / "pause"  # beside the outputs, not among them
        control.mkdir(exist_ok=True)
        self.ready, self.go = control / f"{where}.ready", control / f"{where}.go"
        self.process = subprocess.Popen(
            [sys.executable, str(PAUSED_BUILD), str(self.ready), str(self.go), where, *overrides],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=signals_as_in_a_terminal,
        )

    def wait_until_paused(self) -> None:
        deadline = time.monotonic() + 300
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the build never reached its pause: {self.process.communicate()}")
            time.sleep(0.05)

    def finish(self, signum: int | None = None) -> tuple[int, str]:
        """Send `signum` (or let it go on) and wait: its exit status and stderr."""
        if signum is None:
            self.go.touch()
        else:
            self.process.send_signal(signum)
        self.stdout, stderr = self.process.communicate(timeout=300)
        return self.process.returncode, stderr


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def out(tmp_path) -> Path:
    """The parent folder of the repositories a test builds."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_mid_export_cleans_up_and_exits_with_one_line(tmp_path, out, signum) -> None:
    repo = out / "new_parent" / "repo"
    build = PausedBuild(tmp_path, "export", *SMALL, f"output_dir={repo}")
    build.wait_until_paused()
    assert len(hidden(repo.parent)) == 1  # its staging folder, holding a first export
    returncode, stderr = build.finish(signum)
    name = signal.Signals(signum).name
    assert returncode == 128 + signum
    assert stderr.strip().splitlines()[-1] == (
        f"error: build interrupted by {name}; nothing was written"
    )
    assert "Traceback" not in stderr
    assert not repo.parent.exists()  # staging and the parent folder it created are gone


def catches(pid: int, signum: int) -> bool | None:
    """Whether process `pid` handles `signum` (its SigCgt mask); None without Linux's /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def wait_for_its_own_code(process: subprocess.Popen, fallback_s: float = 0.5) -> None:
    """Until the command handles SIGTERM itself (its own code runs), or at the latest
    `fallback_s` after Python handles SIGINT at all. Python's own start-up in between (site,
    .pth files; ~25 ms, more on a busy machine) runs no code of ours."""
    deadline = time.monotonic() + 60
    while catches(process.pid, signal.SIGINT) is False:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.002)
    fallback = time.monotonic() + fallback_s
    while catches(process.pid, signal.SIGTERM) is False and time.monotonic() < fallback:
        time.sleep(0.002)


def test_a_signal_before_the_build_starts_is_one_line(tmp_path) -> None:
    # While torch and Hydra import, the config composes, the plan resolves: before the first
    # log line. One at a time: side by side they would slow each other's start-up.
    moments = [(delay, signal.SIGINT) for delay in (0.0, 0.1, 0.3, 0.6, 1.0, 1.5)]
    moments += [(0.4, signal.SIGTERM), (0.2, signal.SIGHUP)]
    for delay, signum in moments:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelrepo_gen", *SMALL, f"output_dir={tmp_path / 'repo'}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=signals_as_in_a_terminal,
        )
        try:
            wait_for_its_own_code(process)
            time.sleep(delay)
            assert process.poll() is None, process.communicate()
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        name = signal.Signals(signum).name
        expected = f"error: build interrupted by {name}; nothing was written\n"
        assert (process.returncode, stderr) == (128 + signum, expected), (delay, stdout)
        assert list(tmp_path.iterdir()) == []


def test_a_build_under_nohup_keeps_ignoring_sighup(tmp_path, out) -> None:
    def as_under_nohup() -> None:
        signals_as_in_a_terminal()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    repo = out / "repo"
    process = subprocess.Popen(
        [sys.executable, "-m", "modelrepo_gen", *SMALL, f"output_dir={repo}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_under_nohup,
    )
    wait_for_its_own_code(process)
    process.send_signal(signal.SIGHUP)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert (repo / "manifest.json").is_file()


def test_the_next_build_removes_what_a_killed_build_left(tmp_path, out) -> None:
    build = PausedBuild(tmp_path, "export", *SMALL, f"output_dir={out / 'killed'}")
    build.wait_until_paused()
    left = hidden(out)
    assert [name for name in left if ".killed.building-" in name]
    assert build.finish(signal.SIGKILL)[0] == -signal.SIGKILL
    assert hidden(out) == left  # kill -9 gives no chance to clean up

    result = run_cli(*SMALL, f"output_dir={out / 'next'}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["next"]


def test_a_live_build_keeps_its_staging_folder_while_another_build_runs(tmp_path, out) -> None:
    live = PausedBuild(tmp_path, "export", *SMALL, f"output_dir={out / 'live'}")
    live.wait_until_paused()
    staging = [out / n for n in hidden(out) if ".live.building-" in n]
    assert len(staging) == 1
    before = snapshot(staging[0])

    result = run_cli(*SMALL, f"output_dir={out / 'other'}")
    assert result.returncode == 0, result.stderr
    assert snapshot(staging[0]) == before

    returncode, stderr = live.finish()
    assert returncode == 0, stderr
    check_replaceable(out / "live")
    assert not [n for n in hidden(out) if ".building-" in n]


def test_killed_right_after_the_swap_output_dir_holds_the_new_repository(tmp_path, out) -> None:
    repo = out / "repo"
    build_repository(compose_config(SMALL), repo)
    old = snapshot(repo)
    build = PausedBuild(tmp_path, "exchange", *SMALL, "seed=5", "force=true", f"output_dir={repo}")
    build.wait_until_paused()
    assert build.finish(signal.SIGKILL)[0] == -signal.SIGKILL
    check_replaceable(repo)  # complete: every file the manifest lists, nothing else
    assert json.loads((repo / "manifest.json").read_text())["config"]["seed"] == 5
    leftover = [out / n for n in hidden(out) if ".repo.building-" in n]
    assert len(leftover) == 1 and snapshot(leftover[0]) == old  # the replaced one

    result = run_cli(*SMALL, f"output_dir={out / 'next'}")
    assert result.returncode == 0, result.stderr
    assert not leftover[0].exists()


def test_killed_between_the_fallback_renames_the_next_build_restores_it(tmp_path, out) -> None:
    repo = out / "repo"
    build_repository(compose_config(SMALL), repo)
    old = snapshot(repo)
    build = PausedBuild(
        tmp_path, "move_aside", *SMALL, "seed=5", "force=true", f"output_dir={repo}"
    )
    build.wait_until_paused()
    assert not repo.exists()  # the moment the fallback cannot avoid
    assert build.finish(signal.SIGKILL)[0] == -signal.SIGKILL

    result = run_cli(*SMALL, f"output_dir={repo}")
    assert "restored" in result.stdout, result.stdout  # the log goes to stdout
    assert "already exists" in result.stderr, result.stderr
    assert result.returncode == 2
    assert snapshot(repo) == old
    assert not [n for n in hidden(out) if n.startswith(".repo.")]


def test_the_fallback_publishes_where_the_exchange_is_unsupported(tmp_path, out) -> None:
    repo = out / "repo"
    build_repository(compose_config(SMALL), repo)
    build = PausedBuild(
        tmp_path, "move_aside", *SMALL, "seed=5", "force=true", f"output_dir={repo}"
    )
    build.go.touch()  # pass through the pause
    returncode, stderr = build.finish()
    assert returncode == 0, stderr
    assert json.loads((repo / "manifest.json").read_text())["config"]["seed"] == 5
    assert sorted(p.name for p in out.iterdir()) == ["repo"]


def test_a_signal_stops_a_sweep_with_its_summary(tmp_path, out) -> None:
    sweep = PausedBuild(tmp_path, "export", "-m", *SMALL, "seed=1,2", f"output_dir={out}")
    sweep.wait_until_paused()  # inside the first variant's first export
    returncode, stderr = sweep.finish(signal.SIGTERM)
    assert returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr and "Error executing job" not in stderr
    stdout = sweep.stdout
    assert "0 of 1 variants built, then interrupted" in stdout
    assert "build interrupted by SIGTERM; nothing was written" in stdout
    assert "seed=2" not in stdout  # the sweep stopped: the second variant never started
    assert sorted(p.name for p in out.iterdir()) == ["multirun.yaml"]
