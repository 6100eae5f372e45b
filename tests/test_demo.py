"""`make demo`'s program runs end to end on a small CTC build: it serves, transcribes, scores,
and speaks a sentence with the Piper voice that the ASR pipeline transcribes back."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.project import ROOT

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
    # The speech part: tts_piper built beside it, its sentence spoken and transcribed back
    # (by seeded weights here, so only the plumbing is checked, not the words).
    assert "tts_piper: " in result.stdout and " s of speech at 22050 Hz" in result.stdout
    assert "  spoken: The quick brown fox" in result.stdout and "  heard:  " in result.stdout
    assert (tmp_path / "demo_tts" / "manifest.json").is_file()
