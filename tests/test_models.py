"""The PyTorch modules and the python-backend helpers, checked against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelrepo_gen.components.networks.conv_asr import ConvASR, ConvASRConfig, ConvBlockConfig
from modelrepo_gen.components.networks.mel_features import MelFeatureExtractor, MelFeaturesConfig
from modelrepo_gen.components.triton_python.ctc_greedy_decoder import greedy_decode
from modelrepo_gen.components.triton_python.exported_model_runner import (
    find_problem,
    pad_and_stack,
    split_outputs,
)


def numpy_log_mel(audio: np.ndarray, config: MelFeaturesConfig) -> np.ndarray:
    """Straightforward numpy log-mel: preemphasis, zero-padded centred frames, rfft, mel, norm."""
    from modelrepo_gen.components.networks.mel_features import mel_filterbank

    hop = int(config.window_stride * config.sample_rate)
    win = int(config.window_size * config.sample_rate)
    x = np.concatenate([audio[:1], audio[1:] - config.preemphasis * audio[:-1]]).astype(np.float64)
    half = config.n_fft // 2
    x = np.pad(x, (half, half))
    window = np.zeros(config.n_fft)
    start = (config.n_fft - win) // 2
    window[start : start + win] = np.hanning(win + 1)[:-1]
    frames = len(audio) // hop + 1
    spectra = np.stack(
        [
            np.abs(np.fft.rfft(x[i * hop : i * hop + config.n_fft] * window)) ** 2
            for i in range(frames)
        ],
        axis=1,
    )
    fb = mel_filterbank(
        config.sample_rate, config.n_fft, config.n_mels, 0.0, config.sample_rate / 2
    )
    log_mel = np.log(fb.astype(np.float64) @ spectra + config.log_zero_guard)
    mean = log_mel.mean(axis=1, keepdims=True)
    std = log_mel.std(axis=1, ddof=1, keepdims=True)
    return (log_mel - mean) / (std + 1e-5)


def test_feature_extractor_matches_numpy_reference() -> None:
    config = MelFeaturesConfig()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(12345)).astype(np.float32)
    features, length = MelFeatureExtractor(config)(
        torch.from_numpy(audio)[None], torch.tensor([[len(audio)]], dtype=torch.int32)
    )
    expected = numpy_log_mel(audio, config)
    assert int(length) == expected.shape[1] == 12345 // 160 + 1
    np.testing.assert_allclose(features[0].detach().numpy(), expected, atol=2e-3)


def test_mel_filterbank_covers_the_spectrum_without_gaps() -> None:
    from modelrepo_gen.components.networks.mel_features import mel_filterbank

    fb = mel_filterbank(16000, 512, 64, 0.0, 8000.0)
    assert fb.shape == (64, 257) and (fb >= 0).all()
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # filters rise in frequency
    assert (fb[:, 2:-2].sum(axis=0) > 0).all()


def small_model(dense: bool, separable: bool) -> ConvASR:
    blocks = [
        ConvBlockConfig(16, 11, stride=2, separable=separable),
        ConvBlockConfig(16, 11, repeat=2, residual=True, separable=separable, times=2),
        ConvBlockConfig(24, 7, dilation=2, separable=separable),
    ]
    torch.manual_seed(0)
    return ConvASR(ConvASRConfig(feat_in=8, dense_residual=dense, blocks=blocks), 5).eval()


@pytest.mark.parametrize(("dense", "separable"), [(True, False), (False, True)])
def test_padded_batch_equals_single_utterances(dense: bool, separable: bool) -> None:
    model, features = (
        small_model(dense, separable),
        MelFeatureExtractor(MelFeaturesConfig(n_mels=8)),
    )
    lengths = [16000, 9001, 4321]
    audio = torch.zeros(3, max(lengths))
    for i, n in enumerate(lengths):
        audio[i, :n] = 0.1 * torch.randn(n)
    with torch.no_grad():
        batch_lp, batch_len = model(
            *features(audio, torch.tensor(lengths, dtype=torch.int32).view(-1, 1))
        )
        for i, n in enumerate(lengths):
            lp, length = model(
                *features(audio[i : i + 1, :n], torch.tensor([[n]], dtype=torch.int32))
            )
            assert int(length) == int(batch_len[i]) == lp.shape[1]
            torch.testing.assert_close(batch_lp[i, : int(length)], lp[0], atol=1e-5, rtol=1e-5)


def test_dense_residuals_draw_on_every_earlier_block() -> None:
    assert small_model(True, False).residual_from == [[], [0], [0, 1], []]
    assert small_model(False, True).residual_from == [[], [-1], [-1], []]


def test_full_size_parameter_counts_match_the_papers() -> None:
    from helpers.project import compose_config

    from modelrepo_gen.plan.resolver import resolve

    counts = {}
    for model in ("quartznet_15x5", "jasper_10x5"):
        plan = resolve(compose_config([f"model={model}"]))
        unit = next(u for u in plan.units if u.role == "acoustic_model")
        with torch.device("meta"):
            module = unit.export.make_module()
        counts[model] = sum(p.numel() for p in module.parameters()) / 1e6
    assert 18.5 < counts["quartznet_15x5"] < 19.5  # paper: 18.9M
    assert 320 < counts["jasper_10x5"] < 340  # paper: 333M


def test_greedy_decode_collapses_repeats_and_drops_blanks() -> None:
    vocabulary = [" ", "a", "b"]
    blank = 3
    ids = [1, 1, blank, 1, 2, 2, 0, blank, blank, 2, 1]
    logprobs = np.full((len(ids) + 2, 4), -10.0)
    logprobs[np.arange(len(ids)), ids] = 0.0
    logprobs[len(ids) :, 1] = 0.0  # past the length: ignored
    assert greedy_decode(logprobs, len(ids), vocabulary) == "aab ba"
    assert greedy_decode(logprobs, 0, vocabulary) == ""


def test_request_checks_name_the_problem() -> None:
    checks = {
        "finite": ["AUDIO"],
        "max_length": {"AUDIO": [100, 1]},
        "lengths": {"N": ["AUDIO", 1]},
    }
    good = {"AUDIO": np.zeros((1, 50), np.float32), "N": np.array([[50]], np.int32)}
    assert find_problem(good, checks) is None
    assert "empty" in find_problem({**good, "AUDIO": np.zeros((1, 0), np.float32)}, checks)
    nan = good["AUDIO"].copy()
    nan[0, 3] = np.nan
    assert "NaN" in find_problem({**good, "AUDIO": nan}, checks)
    assert "maximum of 100" in find_problem(
        {**good, "AUDIO": np.zeros((1, 101), np.float32)}, checks
    )
    assert "between 1 and 50" in find_problem({**good, "N": np.array([[51]], np.int32)}, checks)
    assert "between 1 and 50" in find_problem({**good, "N": np.array([[-1]], np.int32)}, checks)


def test_ragged_requests_are_padded_then_trimmed_back() -> None:
    a, b = np.ones((1, 3, 4), np.float32), np.full((2, 3, 6), 2.0, np.float32)
    stacked = pad_and_stack([a, b])
    assert stacked.shape == (3, 3, 6) and stacked[0, :, 4:].sum() == 0
    outputs = {"X": stacked, "LEN": np.array([[4], [6], [5]], np.int32)}
    first, second = split_outputs(outputs, [1, 2], {"X": ["LEN", 2]})
    assert first["X"].shape == (1, 3, 4) and second["X"].shape == (2, 3, 6)
    np.testing.assert_array_equal(first["X"], a)
