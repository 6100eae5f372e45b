"""Checks of the log-mel settings, so a bad value stops before any work with what is allowed."""

from __future__ import annotations

from modelrepo_gen.components.networks.mel_features import MelFeaturesConfig, mel_filterbank
from modelrepo_gen.core.validation import check_number, require

# The exported STFT is a Conv1d over a [n_fft + 2, 1, n_fft] DFT basis: it grows with n_fft
# squared (4096 is about 134 MB in every exported feature extractor).
MAX_N_FFT = 4096
NORMALIZE = ("per_feature", "none")


def window_samples(seconds: float, sample_rate: int) -> int:
    return int(round(seconds * sample_rate))


def check_mel_features(features: MelFeaturesConfig, where: str = "featurizer") -> None:
    """Raise UserError naming the first setting that cannot give meaningful features."""
    rate = features.sample_rate
    check_number(f"{where}.sample_rate", rate, above=0, unit="Hz")
    require(
        features.normalize in NORMALIZE,
        f"{where}.normalize must be one of {', '.join(NORMALIZE)}, got {features.normalize!r}",
    )
    sample = 1.0 / rate
    check_number(f"{where}.window_size", features.window_size, above=0, unit="seconds")
    check_number(f"{where}.window_stride", features.window_stride, above=0, unit="seconds")
    window = window_samples(features.window_size, rate)
    hop = window_samples(features.window_stride, rate)
    require(
        window >= 2,
        f"{where}.window_size must span at least 2 samples ({2 * sample:g} seconds at "
        f"{rate} Hz), got {features.window_size:g}",
    )
    require(
        hop >= 1,
        f"{where}.window_stride must span at least 1 sample ({sample:g} seconds at "
        f"{rate} Hz), got {features.window_stride:g}",
    )
    require(
        hop <= window,
        f"{where}.window_stride ({features.window_stride:g} s) must not exceed window_size "
        f"({features.window_size:g} s): audio between the windows would be skipped",
    )
    check_number(f"{where}.n_fft", features.n_fft, at_least=1, at_most=MAX_N_FFT)
    require(
        features.n_fft >= window,
        f"{where}.n_fft ({features.n_fft}) must be at least the window length: window_size "
        f"{features.window_size:g} s is {window} samples at {rate} Hz",
    )
    nyquist = rate / 2
    check_number(f"{where}.lowfreq", features.lowfreq, at_least=0, below=nyquist, unit="Hz")
    highfreq = nyquist if features.highfreq is None else features.highfreq
    if features.highfreq is not None:
        check_number(
            f"{where}.highfreq",
            features.highfreq,
            above=features.lowfreq,
            at_most=nyquist,
            unit="Hz (above lowfreq, up to half the sample rate; null for half the sample rate)",
        )
    bins = features.n_fft // 2 + 1
    check_number(f"{where}.n_mels", features.n_mels, at_least=1, at_most=bins)
    check_number(f"{where}.preemphasis", features.preemphasis, at_least=0, below=1)
    check_number(f"{where}.log_zero_guard", features.log_zero_guard, above=0, below=1)
    bank = mel_filterbank(rate, features.n_fft, features.n_mels, features.lowfreq, highfreq)
    empty = int((bank.max(axis=1) <= 0).sum())
    require(
        empty == 0,
        f"{where}.n_mels ({features.n_mels}) is too many for n_fft {features.n_fft} between "
        f"{features.lowfreq:g} and {highfreq:g} Hz: {empty} mel bands would get no FFT bin; "
        "use fewer n_mels, a larger n_fft or a wider lowfreq..highfreq",
    )
