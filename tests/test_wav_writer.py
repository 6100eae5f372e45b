"""The synthesize client's WAV writer: 16-bit mono PCM, clipped, written whole or not at all."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from modelrepo_gen.clients.wav_writer import pcm16, write_wav
from modelrepo_gen.core.errors import UserError


def test_pcm16_scales_and_clips() -> None:
    assert pcm16(np.array([0.0, 0.5, -1.0, 1.0, 3.0, -7.0])).tolist() == [
        0, 16384, -32767, 32767, 32767, -32767
    ]  # fmt: skip


def test_write_wav(tmp_path: Path) -> None:
    out = tmp_path / "a.wav"
    write_wav(out, np.linspace(-1, 1, 101, dtype=np.float32), 22050)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.getnframes() == 101
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary file left


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing/a.wav", "does not exist"), (".", "it is a folder")],
)
def test_unwritable_paths_are_named(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        write_wav(tmp_path / name, np.zeros(3), 16000)
    assert list(tmp_path.iterdir()) == []
