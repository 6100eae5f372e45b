"""Whisper's log-mel front end, written in torch so it exports to ONNX and TorchScript.

The same numbers as OpenAI's `log_mel_spectrogram` and transformers' WhisperFeatureExtractor:
each utterance is cut or padded with zeros to a 30 s window from its own length, a centred
(reflect-padded) STFT with a periodic Hann window, power, Slaney mel filters, log10, a floor
8 below the utterance's own maximum, then (x + 4) / 4. The STFT is a Conv1d over a fixed
windowed DFT basis, as in mel_features.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modelrepo_gen.components.networks.mel_features import mel_filterbank, windowed_dft_basis


@dataclass
class WhisperFeaturesConfig:
    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    chunk_seconds: int = 30  # Whisper's encoder sees exactly this window

    @property
    def chunk_samples(self) -> int:
        return self.chunk_seconds * self.sample_rate

    @property
    def frames(self) -> int:
        return self.chunk_samples // self.hop_length


class WhisperLogMel(nn.Module):
    """audio [B, N] f32 + length [B, 1] i32 -> features [B, n_mels, frames] f32 (80 x 3000)."""

    LOG_FLOOR = 1e-10
    DYNAMIC_RANGE = 8.0  # log10 units kept below each utterance's maximum

    def __init__(self, config: WhisperFeaturesConfig | None = None) -> None:
        super().__init__()
        config = config or WhisperFeaturesConfig()
        self.n_fft = config.n_fft
        self.hop = config.hop_length
        self.chunk = config.chunk_samples
        self.frames = config.frames
        fb = mel_filterbank(
            config.sample_rate, config.n_fft, config.n_mels, 0.0, config.sample_rate / 2
        )
        basis = windowed_dft_basis(config.n_fft, config.n_fft)
        self.register_buffer("dft_basis", torch.from_numpy(basis))
        self.register_buffer("filterbank", torch.from_numpy(fb))

    def forward(self, audio: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        samples = length.view(-1, 1).long()
        # Zeros past each utterance's own length, then exactly one window: concatenating zeros
        # and slicing keeps every shape static for the exporters whatever N is.
        zeros = torch.zeros(audio.shape[0], self.chunk, dtype=audio.dtype, device=audio.device)
        window = torch.cat([audio, zeros], dim=1)[:, : self.chunk]
        positions = torch.arange(self.chunk, device=audio.device)[None, :]
        window = window * (positions < samples).to(audio.dtype)

        half = self.n_fft // 2
        padded = nn.functional.pad(window.unsqueeze(1), (half, half), mode="reflect")
        spectrum = nn.functional.conv1d(padded, self.dft_basis, stride=self.hop)
        spectrum = spectrum[:, :, : self.frames]  # Whisper drops the STFT's last frame
        bins = spectrum.shape[1] // 2
        power = spectrum[:, :bins] ** 2 + spectrum[:, bins:] ** 2
        log_mel = torch.log10(torch.clamp(torch.matmul(self.filterbank, power), min=self.LOG_FLOOR))
        peak = torch.amax(log_mel, dim=(1, 2), keepdim=True)
        log_mel = torch.maximum(log_mel, peak - self.DYNAMIC_RANGE)
        return (log_mel + 4.0) / 4.0
