"""Writing repositories safely: only folders whose every file this tool wrote are replaced."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from importlib.util import cache_from_source
from pathlib import Path

import pytest
from conftest import ROOT, compose_config

from modelrepo_gen.build import build_repository
from modelrepo_gen.errors import UserError

SMALL = ["model=quartznet_mini"]


def cli(*args: str, cwd: Path = ROOT, umask: int = 0o022, home: Path | None = None):
    env = dict(os.environ, **({"HOME": str(home)} if home else {}))
    return subprocess.run(
        [sys.executable, "-m", "modelrepo_gen", *SMALL, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(umask),
    )


def one_error_line(result, returncode: int = 2) -> str:
    assert result.returncode == returncode, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    return errors[0]


def listing(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under `root`."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in root.rglob("*")
    }


def test_force_refuses_a_folder_that_merely_holds_a_manifest_json(tmp_path) -> None:
    app = tmp_path / "web_app"
    (app / "assets").mkdir(parents=True)
    (app / "manifest.json").write_text('{"name": "PWA"}')
    (app / "index.html").write_text("hi")
    before = listing(app)
    line = one_error_line(cli(f"output_dir={app}", "force=true"))
    assert "not a repository built by modelrepo_gen" in line
    assert "assets/, index.html, manifest.json" in line
    assert listing(app) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web_app"]


def test_force_refuses_a_repository_holding_files_it_did_not_write(tmp_path) -> None:
    repo = tmp_path / "repo"
    build_repository(compose_config(SMALL), repo)
    (repo / "notes.txt").write_text("mine")
    edited = repo / "asr_quartznet" / "config.pbtxt"
    edited.write_text(edited.read_text() + "# tuned by hand\n")
    (repo / "asr_quartznet" / "1" / "data").symlink_to("/etc")
    before = listing(repo)
    with pytest.raises(UserError) as refused:
        build_repository(compose_config([*SMALL, "force=true", "seed=3"]), repo)
    message = str(refused.value)
    assert "notes.txt (added)" in message
    assert "asr_quartznet/config.pbtxt (changed since the build)" in message
    assert "asr_quartznet/1/data (a link)" in message
    assert listing(repo) == before

    # Once they are moved out, it is ours again: a missing file loses nobody anything, and the
    # bytecode Triton's python backend caches beside our model.py files is derived from ours.
    for path in (repo / "notes.txt", edited, repo / "asr_quartznet" / "1" / "data"):
        path.unlink()
    for model in repo.glob("*/1/model.py"):
        py_compile.compile(str(model), cfile=cache_from_source(str(model)), doraise=True)
    assert list(repo.glob("*/1/__pycache__/model.*.pyc"))
    build_repository(compose_config([*SMALL, "force=true", "seed=3"]), repo)
    assert edited.is_file() and not list(repo.glob("*/1/__pycache__"))
