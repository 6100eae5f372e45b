"""load_audio: any rate and channel count in, float32 mono at the model's rate out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.core.errors import UserError


def _tone(rate: int, seconds: float, hz: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


def test_stereo_44k_flac_becomes_16k_mono(tmp_path: Path) -> None:
    left, right = _tone(44100, 1.5, 440, 0.6), _tone(44100, 1.5, 440, 0.2)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_16")

    audio = load_audio(path)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == math.ceil(len(left) * 160 / 441)  # 1.5 s stays 1.5 s
    stored, _ = soundfile.read(path, dtype="float32")
    reference = resample_poly(stored.mean(axis=1), 160, 441)  # 16000/44100 reduced by the gcd
    np.testing.assert_allclose(audio, reference, atol=1e-6)
    # And independent of scipy: the mean of the channels is a 0.4 tone at 16 kHz.
    middle = slice(1000, 23000)  # away from the filter's edge effects
    np.testing.assert_allclose(audio[middle], _tone(16000, 1.5, 440, 0.4)[middle], atol=2e-3)


def test_8k_wav_is_upsampled_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "narrowband.wav"
    soundfile.write(path, _tone(8000, 0.75, 300, 0.5), 8000, subtype="PCM_16")

    audio = load_audio(path, sample_rate=16000)

    assert len(audio) == 12000
    stored, _ = soundfile.read(path, dtype="float32")
    np.testing.assert_allclose(audio, resample_poly(stored, 2, 1), atol=1e-6)
    np.testing.assert_allclose(audio[500:11500], _tone(16000, 0.75, 300, 0.5)[500:11500], atol=2e-3)


def test_matching_rate_is_read_unchanged_and_channels_averaged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.uniform(-0.5, 0.5, size=(1600, 3)).astype(np.float32)
    path = tmp_path / "three_channels.wav"
    soundfile.write(path, data, 16000, subtype="FLOAT")

    np.testing.assert_allclose(load_audio(path), data.mean(axis=1), atol=1e-7)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing.wav' does not exist"):
        load_audio(tmp_path / "missing.wav")


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "not_audio.wav"
    path.write_text("this is not a RIFF file")
    with pytest.raises(UserError, match="cannot read audio file '.*not_audio.wav'"):
        load_audio(path)
