"""Pytest plugin: the voices pipeline (tests/helpers/tts_fixtures.py) built once per session."""

from __future__ import annotations

import pytest

from helpers.cli_runs import run_cli
from helpers.tts_fixtures import (
    VOICES_PARITY_SHAPES,
    VoicesBuild,
    write_tacotron2_checkpoint,
    write_voices_conf,
)


@pytest.fixture(scope="session")
def voices_build(tmp_path_factory: pytest.TempPathFactory) -> VoicesBuild:
    """The voices pipeline built once by the command line, from a team's --config-dir."""
    folder = tmp_path_factory.mktemp("voices")
    conf = write_voices_conf(folder)
    checkpoint = folder / "tacotron2.pt"
    stops = write_tacotron2_checkpoint(checkpoint)
    shapes = ",".join(f"{{batch:{b},seconds:{s}}}" for b, s in VOICES_PARITY_SHAPES)
    result = run_cli(
        "--config-dir",
        str(conf),
        "pipeline=voices",
        f"pipeline.models.tacotron2.checkpoint={checkpoint}",
        f"parity_shapes=[{shapes}]",
        f"output_dir={folder / 'repo'}",
    )
    assert result.returncode == 0, result.stderr
    return VoicesBuild(folder / "repo", checkpoint, stops, result.stdout)
