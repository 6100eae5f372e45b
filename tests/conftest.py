"""Shared helpers: compose the project's config like the CLI does, and run the CLI itself."""

from __future__ import annotations

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
