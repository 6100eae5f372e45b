"""Log-mel feature extractor (Jasper/QuartzNet style), written in torch so it exports.

The STFT is a Conv1d over a fixed windowed DFT basis: it exports to ONNX and TorchScript alike.
Padding is with zeros and every step is masked to the valid length, so an utterance gives the
same features alone or padded inside a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class MelFeaturesConfig:
    sample_rate: int = 16000  # a pipeline sets its own pipeline.sample_rate here
    window_size: float = 0.02
    window_stride: float = 0.01
    n_fft: int = 512
    n_mels: int = 64
    preemphasis: float = 0.97
    lowfreq: float = 0.0
    highfreq: float | None = None
    log_zero_guard: float = 2.0**-24
    # per_feature: each mel band to zero mean and unit deviation over the utterance's valid
    # frames (NeMo's); none: the log-mel as it is (what streaming can reproduce exactly)
    normalize: str = "per_feature"


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney scale: linear below 1 kHz, logarithmic above (librosa's default).
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, hz)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, slaney_norm: bool = True
) -> np.ndarray:
    """Triangular filters on the Slaney mel scale, shape [n_mels, n_fft // 2 + 1], each
    normalised to unit area unless `slaney_norm` is False (librosa's norm=None)."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    if slaney_norm:
        weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    return weights.astype(np.float32)


def windowed_dft_basis(n_fft: int, win_length: int) -> np.ndarray:
    """Real and imaginary DFT rows times a centred Hann window: [2 * (n_fft//2 + 1), 1, n_fft]."""
    window = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    window[start : start + win_length] = np.hanning(win_length + 1)[:-1]  # periodic Hann
    freqs = np.arange(n_fft // 2 + 1)[:, None]
    phase = 2 * np.pi * freqs * np.arange(n_fft)[None, :] / n_fft
    basis = np.concatenate([np.cos(phase), -np.sin(phase)]) * window[None, :]
    return basis[:, None, :].astype(np.float32)


class MelFeatureExtractor(nn.Module):
    """audio [B, T] f32 + length [B, 1] i32 -> features [B, n_mels, F] f32 + length [B, 1] i32."""

    def __init__(self, config: MelFeaturesConfig) -> None:
        super().__init__()
        # A pipeline checks its settings first (mel_features_checks), with clearer messages.
        self.hop = int(round(config.window_stride * config.sample_rate))
        win_length = int(round(config.window_size * config.sample_rate))
        if win_length > config.n_fft:
            raise ValueError(f"window ({win_length} samples) is longer than n_fft ({config.n_fft})")
        self.n_fft = config.n_fft
        self.preemphasis = config.preemphasis
        self.log_zero_guard = config.log_zero_guard
        self.normalize = config.normalize == "per_feature"
        highfreq = config.sample_rate / 2 if config.highfreq is None else config.highfreq
        fb = mel_filterbank(
            config.sample_rate, config.n_fft, config.n_mels, config.lowfreq, highfreq
        )
        self.register_buffer(
            "dft_basis", torch.from_numpy(windowed_dft_basis(self.n_fft, win_length))
        )
        self.register_buffer("filterbank", torch.from_numpy(fb))

    def forward(
        self, audio: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        samples = length.view(-1).long()
        sample_mask = torch.arange(audio.shape[1], device=audio.device)[None, :] < samples[:, None]
        audio = audio * sample_mask.to(audio.dtype)
        emphasized = torch.cat(
            [audio[:, :1], audio[:, 1:] - self.preemphasis * audio[:, :-1]], dim=1
        ) * sample_mask.to(audio.dtype)

        half = self.n_fft // 2
        padded = nn.functional.pad(emphasized.unsqueeze(1), (half, half))
        spectrum = nn.functional.conv1d(padded, self.dft_basis, stride=self.hop)
        bins = spectrum.shape[1] // 2
        power = spectrum[:, :bins] ** 2 + spectrum[:, bins:] ** 2
        mel = torch.matmul(self.filterbank, power)
        log_mel = torch.log(mel + self.log_zero_guard)

        frames = torch.div(samples, self.hop, rounding_mode="floor") + 1
        frame_mask = (
            torch.arange(log_mel.shape[2], device=audio.device)[None, :] < frames[:, None]
        ).unsqueeze(1)
        mask = frame_mask.to(log_mel.dtype)
        if not self.normalize:
            return log_mel * mask, frames.to(torch.int32).view(-1, 1)
        count = frames.to(log_mel.dtype).view(-1, 1, 1)
        mean = (log_mel * mask).sum(dim=2, keepdim=True) / count
        centered = (log_mel - mean) * mask
        # Sample std over the valid frames (n - 1, at least 1), as NeMo's per_feature norm.
        var = (centered**2).sum(dim=2, keepdim=True) / torch.clamp(count - 1, min=1.0)
        normalized = centered / (torch.sqrt(var) + 1e-5)
        return normalized * mask, frames.to(torch.int32).view(-1, 1)
