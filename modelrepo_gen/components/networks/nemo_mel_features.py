"""NeMo's log-mel front-end (FilterbankFeatures at inference), written in torch so it exports.

Computes what NeMo's AudioToMelSpectrogramPreprocessor computes in eval mode: pre-emphasis
masked to each length, a centred zero-padded STFT with NeMo's symmetric window, magnitude to
`mag_power`, NeMo's own mel filterbank, a log with an added or clamped guard, normalisation
over the valid frames (per feature, standard deviation with n - 1, plus 1e-5), frames past the
length set to `pad_value`, and the time axis padded to a multiple of `pad_to`. The frame count
is NeMo's: (samples + 2 * (n_fft // 2) - n_fft) // hop, one fewer than the STFT gives.

The window and filterbank are the tensors stored in the .nemo file; the STFT is a Conv1d over a
fixed windowed DFT basis (exports to ONNX and TorchScript alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class NemoMelFeaturesConfig:
    sample_rate: int = 16000
    n_window_size: int = 320  # samples
    n_window_stride: int = 160
    window: str = "hann"
    n_fft: int = 512
    features: int = 64
    preemph: float | None = 0.97
    lowfreq: float = 0.0
    highfreq: float = 8000.0
    log: bool = True
    log_zero_guard_type: str = "add"  # add | clamp
    log_zero_guard_value: float = 2.0**-24
    mag_power: float = 2.0
    normalize: str = "per_feature"  # per_feature | all_features | none
    pad_to: int = 16
    pad_value: float = 0.0
    mel_norm: str | None = "slaney"  # recorded: the filterbank comes from the .nemo file


def windowed_dft_basis(window: np.ndarray, n_fft: int) -> np.ndarray:
    """Real and imaginary DFT rows times the window centred in n_fft, as torch.stft pads it."""
    padded = np.zeros(n_fft)
    start = (n_fft - window.size) // 2
    padded[start : start + window.size] = window
    freqs = np.arange(n_fft // 2 + 1)[:, None]
    phase = 2 * np.pi * freqs * np.arange(n_fft)[None, :] / n_fft
    basis = np.concatenate([np.cos(phase), -np.sin(phase)]) * padded[None, :]
    return basis[:, None, :].astype(np.float32)


class NemoMelFeatureExtractor(nn.Module):
    """audio [B, T] f32 + length [B, 1] i32 -> features [B, n_mels, F] f32 + length [B, 1] i32."""

    def __init__(
        self, config: NemoMelFeaturesConfig, window: torch.Tensor, filterbank: torch.Tensor
    ) -> None:
        super().__init__()
        self.hop = config.n_window_stride
        self.n_fft = config.n_fft
        self.preemph = 0.0 if config.preemph is None else float(config.preemph)
        self.use_preemph = config.preemph is not None
        self.mag_power = config.mag_power
        self.log = config.log
        self.clamp_guard = config.log_zero_guard_type == "clamp"
        self.guard = config.log_zero_guard_value
        self.normalize = config.normalize
        self.pad_to = config.pad_to
        self.pad_value = config.pad_value
        basis = windowed_dft_basis(window.double().numpy(), self.n_fft)
        self.register_buffer("dft_basis", torch.from_numpy(basis))
        self.register_buffer("filterbank", filterbank.float().reshape(config.features, -1))

    def _normalized(
        self, x: torch.Tensor, mask: torch.Tensor, frames: torch.Tensor
    ) -> torch.Tensor:
        if self.normalize == "per_feature":
            count = frames.to(x.dtype).view(-1, 1, 1)
            mean = (x * mask).sum(dim=2, keepdim=True) / count
            centered = (x - mean) * mask
            # n - 1 as NeMo; one frame gives 0 / 0, which NeMo turns into a zero deviation.
            var = (centered**2).sum(dim=2, keepdim=True) / torch.clamp(count - 1, min=1.0)
            return (x - mean) / (torch.sqrt(var) + 1e-5)  # NeMo adds 1e-5
        if self.normalize == "all_features":
            count = frames.to(x.dtype).view(-1, 1, 1) * x.shape[1]
            mean = (x * mask).sum(dim=(1, 2), keepdim=True) / count
            centered = (x - mean) * mask
            var = (centered**2).sum(dim=(1, 2), keepdim=True) / torch.clamp(count - 1, min=1.0)
            return (x - mean) / (torch.sqrt(var) + 1e-5)  # NeMo adds 1e-5
        return x

    def forward(
        self, audio: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        samples = length.view(-1).long()
        sample_mask = torch.arange(audio.shape[1], device=audio.device)[None, :] < samples[:, None]
        x = audio * sample_mask.to(audio.dtype)
        if self.use_preemph:
            x = torch.cat([x[:, :1], x[:, 1:] - self.preemph * x[:, :-1]], dim=1)
            x = x * sample_mask.to(audio.dtype)

        half = self.n_fft // 2
        padded = nn.functional.pad(x.unsqueeze(1), (half, half))
        spectrum = nn.functional.conv1d(padded, self.dft_basis, stride=self.hop)
        bins = spectrum.shape[1] // 2
        magnitude = torch.sqrt(spectrum[:, :bins] ** 2 + spectrum[:, bins:] ** 2)
        if self.mag_power != 1.0:
            magnitude = magnitude.pow(self.mag_power)
        x = torch.matmul(self.filterbank, magnitude)
        if self.log:
            if self.clamp_guard:
                x = torch.log(torch.clamp(x, min=self.guard))
            else:
                x = torch.log(x + self.guard)

        frames = torch.div(samples + 2 * half - self.n_fft, self.hop, rounding_mode="floor")
        frame_mask = (
            torch.arange(x.shape[2], device=x.device)[None, :] < frames[:, None]
        ).unsqueeze(1)
        mask = frame_mask.to(x.dtype)
        x = self._normalized(x, mask, frames)
        x = torch.where(frame_mask, x, torch.full_like(x, self.pad_value))
        if self.pad_to > 0:
            short = (self.pad_to - x.shape[2] % self.pad_to) % self.pad_to
            x = nn.functional.pad(x, (0, short), value=self.pad_value)
        return x, frames.to(torch.int32).view(-1, 1)
