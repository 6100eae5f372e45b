"""Shared helpers: compose the project's config like the CLI does, and run the CLI itself."""

from __future__ import annotations

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For pytest-xdist (`make test` runs two workers, --dist loadgroup): a file's tests stay on
    one worker, and so do files whose tests use the same costly session fixture, so no module
    fixture or costly session fixture (a build, a server) is made twice."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for item in items:
        plugins = getattr(getattr(item, "module", None), "pytest_plugins", [])
        for plugin in plugins:
            if COSTLY_SESSION_FIXTURES.get(plugin, set()) & set(item.fixturenames):
                parent[root(item.nodeid.split("::")[0])] = root(f"plugin {plugin}")
    for item in items:
        item.add_marker(pytest.mark.xdist_group(root(item.nodeid.split("::")[0])))


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
