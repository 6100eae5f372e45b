"""Shared helpers: compose the project's config like the CLI does, and run the CLI itself."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from modelrepo_gen.config.schema import register_schema

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

register_schema()


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def add_models(repository: Path, combined: Path) -> None:
    """Copy a built repository's model folders into `combined`: several builds, each named by
    its own ensemble, served by one server."""
    combined.mkdir(parents=True, exist_ok=True)
    for folder in repository.iterdir():
        if folder.is_dir():
            shutil.copytree(folder, combined / folder.name)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modelrepo_gen", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def small_asr() -> list[str]:
    """Overrides for a fast QuartzNet-style build."""
    return ["pipeline=asr_quartznet", "model=quartznet_mini"]


# The session fixtures that build or start something, by the plugin module defining them.
COSTLY_SESSION_FIXTURES = {
    "asr_fixtures": {"asr_builds", "asr_combined_repository", "server", "in_process"},
    "nemo_fixtures": {"nemo_builds", "nemo_server"},
    "tts_build": {"voices_build"},
}


def _file_groups(root: Path) -> dict[str, str]:
    """Each test file (as node ids name it) -> its group: files whose tests take a costly
    session fixture of the same plugin share one (read from their source: the plugins they
    declare, the parameters of their functions)."""
    parent: dict[str, str] = {}

    def group(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for path in sorted((root / "tests").glob("test_*.py")):
        file = path.relative_to(root).as_posix()
        group(file)
        tree = ast.parse(path.read_text(), str(path))
        functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        # Fixtures the file takes, less those it defines itself (its own `server`, say).
        taken = {arg.arg for node in functions for arg in node.args.args}
        taken -= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        for node in tree.body:
            if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "pytest_plugins":
                for plugin in ast.literal_eval(node.value):
                    if COSTLY_SESSION_FIXTURES.get(plugin, set()) & taken:
                        parent[group(file)] = group(f"plugin {plugin}")
    return {file: group(file) for file in parent if not file.startswith("plugin ")}


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's
    """`make test` (-n 2 --dist loadfile): a file's tests stay on one worker, and so do files
    whose tests take the same costly session fixture (a build, a server), so none is made twice.
    (xdist's own loadgroup marks do not group under pytest 9: their node-id suffix is lost.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    groups = _file_groups(config.rootpath)

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return groups.get(file, file)

    return FileGroupScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands the largest requests it sent to the controller, which reports."""
    from dataclasses import asdict

    from largest_requests import RECORDED

    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["largest_requests"] = [asdict(r) for r in RECORDED]


def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist's own types
    from largest_requests import RECORDED, LargestRequest

    outputs = getattr(node, "workeroutput", {}).get("largest_requests", [])
    RECORDED.extend(LargestRequest(**record) for record in outputs)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's own type
    """The largest allowed requests sent during the run, with their time and peak memory."""
    from largest_requests import RECORDED

    if not RECORDED:
        return
    terminalreporter.section("largest allowed requests (server + python workers)")
    for record in RECORDED:
        terminalreporter.write_line(
            f"{record.pipeline}: {record.request}: {record.seconds:.1f} s, peak "
            f"{record.peak_mib:.0f} MiB (largest process: {record.largest_process})"
        )
