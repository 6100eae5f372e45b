"""Fixtures every test module may take, and how `make test` spreads the test files over its
workers. Plain helpers live in tests/helpers/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

# Fixture modules: each builds or loads something once per session or module.
pytest_plugins = [
    "helpers.asr_fixtures",
    "helpers.nemo_fixtures",
    "helpers.whisper_fixtures",
    "helpers.tts_build",
]


@pytest.fixture
def small_asr() -> list[str]:
    """Overrides for a fast QuartzNet-style build."""
    return ["pipeline=asr_quartznet", "model=quartznet_mini"]


def costly_session_fixtures(root: Path) -> dict[str, str]:
    """The session fixtures of the fixture modules that build or start something, each with
    its module: read from their source, those that write files (take tmp_path_factory) and
    those that take such a fixture (a server over a build, say)."""
    fixtures: dict[str, tuple[str, set[str]]] = {}  # name -> (module, the fixtures it takes)
    for plugin in pytest_plugins:
        path = root / "tests" / Path(*plugin.split(".")).with_suffix(".py")
        for node in ast.parse(path.read_text(), str(path)).body:
            decorators = (
                ast.unparse(node.decorator_list) if isinstance(node, ast.FunctionDef) else ""
            )
            if "fixture" in decorators and "session" in decorators:
                fixtures[node.name] = (plugin, {arg.arg for arg in node.args.args})
    costly = {name for name, (_, taken) in fixtures.items() if "tmp_path_factory" in taken}
    while more := {n for n, (_, taken) in fixtures.items() if taken & costly} - costly:
        costly |= more
    return {name: fixtures[name][0] for name in costly}


def _file_groups(root: Path) -> dict[str, str]:
    """Each test file (as node ids name it) -> its group: files whose tests take a costly
    session fixture of the same kind share one (read from their source: the parameters of
    their tests and fixtures, less the fixtures the file defines itself, its own `server`
    say)."""
    costly = costly_session_fixtures(root)
    groups = {}
    for path in sorted((root / "tests").glob("test_*.py")):
        file = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(), str(path))
        functions = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            and (node.name.startswith("test_") or "fixture" in ast.unparse(node.decorator_list))
        ]
        taken = {arg.arg for node in functions for arg in node.args.args}
        taken -= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        kinds = sorted({costly[name] for name in taken & costly.keys()})
        groups[file] = f"session fixtures of {kinds[0]}" if kinds else file
    return groups


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

    from helpers.largest_requests import RECORDED

    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["largest_requests"] = [asdict(r) for r in RECORDED]


def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist's own types
    from helpers.largest_requests import RECORDED, LargestRequest

    outputs = getattr(node, "workeroutput", {}).get("largest_requests", [])
    RECORDED.extend(LargestRequest(**record) for record in outputs)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's own type
    """The largest allowed requests sent during the run, with their time and peak memory."""
    from helpers.largest_requests import RECORDED

    if not RECORDED:
        return
    terminalreporter.section("largest allowed requests (server + python workers)")
    for record in RECORDED:
        terminalreporter.write_line(
            f"{record.pipeline}: {record.request}: {record.seconds:.1f} s, peak "
            f"{record.peak_mib:.0f} MiB (largest process: {record.largest_process})"
        )
