"""Whisper's log-mel front end in torch: the same numbers as transformers' extractor on real
speech, batched the same as alone, and the same again once exported to ONNX."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from transformers import WhisperFeatureExtractor

from modelrepo_gen.components.networks.whisper_features import WhisperLogMel

TOLERANCE = 1e-4  # features lie in about [-1.5, 1.5]; measured error about 2e-5
CHUNK = 480_000


@pytest.fixture(scope="module")
def log_mel() -> WhisperLogMel:
    return WhisperLogMel().eval()


def features(module: torch.nn.Module, clips: list[np.ndarray]) -> np.ndarray:
    """Run `module` on `clips` as one zero-padded batch."""
    longest = max(len(clip) for clip in clips)
    audio = np.zeros((len(clips), longest), dtype=np.float32)
    for row, clip in zip(audio, clips):
        row[: len(clip)] = clip
    lengths = np.array([[len(clip)] for clip in clips], dtype=np.int32)
    with torch.inference_mode():
        return module(torch.from_numpy(audio), torch.from_numpy(lengths)).numpy()


def reference(clip: np.ndarray) -> np.ndarray:
    extractor = WhisperFeatureExtractor()  # Whisper's defaults: 80 mels, 30 s, 16 kHz
    return extractor(clip, sampling_rate=16000, return_tensors="np").input_features[0]


def test_matches_transformers_on_real_speech(log_mel, librivox) -> None:
    errors = []
    for path, clip, _ in librivox:
        ours = features(log_mel, [clip])[0]
        assert ours.shape == (80, 3000), path.name
        errors.append(float(np.abs(ours - reference(clip)).max()))
    print(f"max abs error vs WhisperFeatureExtractor per utterance: {errors}")
    assert max(errors) < TOLERANCE


def test_audio_longer_than_the_window_is_cut_to_30_seconds(log_mel, librivox) -> None:
    long_clip = np.concatenate([clip for _, clip, _ in librivox] * 2)  # about 40 s
    assert len(long_clip) > CHUNK
    error = np.abs(features(log_mel, [long_clip])[0] - reference(long_clip)).max()
    assert error < TOLERANCE


def test_an_utterance_gives_the_same_features_alone_and_in_a_batch(log_mel, librivox) -> None:
    clips = [clip for _, clip, _ in librivox]
    batched = features(log_mel, clips)
    for row, clip in zip(batched, clips):
        np.testing.assert_array_equal(row, features(log_mel, [clip])[0])
    # The floor is each utterance's own maximum - 8: a quiet one is not floored by a loud one.
    quiet = clips[1] * 1e-3
    pair = features(log_mel, [clips[0], quiet])
    assert np.abs(pair[1] - reference(quiet)).max() < TOLERANCE


def test_onnx_export_matches_torch(log_mel, librivox) -> None:
    buffer = io.BytesIO()
    example = (torch.zeros(2, 32000), torch.tensor([[32000], [16000]], dtype=torch.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            log_mel,
            example,
            buffer,
            input_names=["AUDIO_SIGNAL", "NUM_SAMPLES"],
            output_names=["FEATURES"],
            dynamic_axes={"AUDIO_SIGNAL": {0: "batch", 1: "samples"}, "NUM_SAMPLES": {0: "batch"}},
            opset_version=17,
            dynamo=False,
            external_data=False,
        )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    clips = [clip for _, clip, _ in librivox]
    longest = max(len(clip) for clip in clips)
    audio = np.zeros((len(clips), longest), dtype=np.float32)
    for row, clip in zip(audio, clips):
        row[: len(clip)] = clip
    lengths = np.array([[len(clip)] for clip in clips], dtype=np.int32)
    (served,) = session.run(None, {"AUDIO_SIGNAL": audio, "NUM_SAMPLES": lengths})
    assert served.shape == (5, 80, 3000)
    error = float(np.abs(served - features(log_mel, clips)).max())
    print(f"max abs error onnxruntime vs torch: {error}")
    assert error < TOLERANCE
    # And against transformers directly, utterance by utterance.
    assert max(np.abs(row - reference(clip)).max() for row, clip in zip(served, clips)) < TOLERANCE


def test_128_mel_bins_match_transformers_as_large_v3_reads_them(librivox) -> None:
    from modelrepo_gen.components.networks.whisper_features import WhisperFeaturesConfig

    wide = WhisperLogMel(WhisperFeaturesConfig(n_mels=128)).eval()
    extractor = WhisperFeatureExtractor(feature_size=128)  # large-v3's preprocessor
    for _, clip, _ in librivox[:2]:
        ours = features(wide, [clip])[0]
        theirs = extractor(clip, sampling_rate=16000, return_tensors="np").input_features[0]
        assert ours.shape == theirs.shape == (128, 3000)
        assert np.abs(ours - theirs).max() < TOLERANCE
