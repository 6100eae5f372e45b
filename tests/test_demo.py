"""`make demo`'s program runs end to end on a small CTC build: it serves, transcribes, scores."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.server


def test_demo_transcribes_librivox_and_reports_the_word_error_rate(tmp_path) -> None:
    repository = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "modelrepo_gen.demo", "--repository", str(repository),
         "pipeline=asr_quartznet", "model=quartznet_mini"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("  served:") == 5 and result.stdout.count("  reference:") == 5
    assert "word error rate: " in result.stdout
    assert "seeded random weights" in result.stdout  # random weights are said to be so
    assert (repository / "manifest.json").is_file()
