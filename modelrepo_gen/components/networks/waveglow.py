"""WaveGlow: a flow-based vocoder, mel spectrogram + Gaussian noise -> audio.

The layout of NVIDIA's DeepLearningExamples: `n_flows` steps of an invertible 1x1 convolution
and an affine coupling whose scale and shift come from a WaveNet-like stack (WN) conditioned on
the upsampled mel; every `n_early_every` flows `n_early_size` channels leave early. `forward` is
inference: it takes the noise from the caller (already scaled by sigma), one value per output
sample, time-major, so the first MEL_LENGTH * hop_length values of an item are its own whether
it runs alone or padded in a batch; extra values are ignored. The inverse 1x1 weights are
computed once by `prepare_inverse` (in float64), so no matrix inverse is exported. Every
dilated convolution sees only samples within the item's length. Plain (not weight-normed)
convolutions: weight norm only matters for training.
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class WaveGlowConfig:
    n_mel: int = 80
    hop_length: int = 256
    n_flows: int = 12
    n_group: int = 8
    n_early_every: int = 4
    n_early_size: int = 2
    wn_layers: int = 8
    wn_channels: int = 256
    wn_kernel_size: int = 3


class Invertible1x1Conv(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        weight = torch.linalg.qr(torch.randn(channels, channels))[0]
        if not weight.is_meta and torch.det(weight) < 0:  # a rotation: log-determinant 0
            weight[:, 0] = -weight[:, 0]
        self.weight = nn.Parameter(weight.unsqueeze(2))
        self.register_buffer("weight_inverse", torch.zeros_like(self.weight), persistent=False)

    def prepare_inverse(self) -> None:
        inverse = torch.linalg.inv(self.weight.detach().squeeze(2).double()).float()
        self.weight_inverse = inverse.unsqueeze(2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv1d(z, self.weight)

    def reverse(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv1d(z, self.weight_inverse)


class WN(nn.Module):
    """Gated dilated convolutions over half the channels, mel-conditioned -> (shift, log-scale)."""

    def __init__(self, n_in: int, n_cond: int, layers: int, channels: int, kernel: int) -> None:
        super().__init__()
        self.channels = channels
        self.start = nn.Conv1d(n_in, channels, 1)
        self.end = nn.Conv1d(channels, 2 * n_in, 1)
        self.cond_layer = nn.Conv1d(n_cond, 2 * channels * layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(layers):
            dilation = 2**i
            self.in_layers.append(
                nn.Conv1d(
                    channels,
                    2 * channels,
                    kernel,
                    dilation=dilation,
                    padding=dilation * (kernel - 1) // 2,
                )
            )
            out = 2 * channels if i < layers - 1 else channels
            self.res_skip_layers.append(nn.Conv1d(channels, out, 1))

    def forward(self, audio: torch.Tensor, spect: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        c = self.channels
        audio = self.start(audio) * keep
        cond = self.cond_layer(spect)
        output = torch.zeros_like(audio)
        last = len(self.in_layers) - 1
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            acts = in_layer(audio) + cond[:, 2 * i * c : 2 * (i + 1) * c]
            acts = torch.tanh(acts[:, :c]) * torch.sigmoid(acts[:, c:])
            res_skip_acts = res_skip(acts)
            if i < last:
                audio = (audio + res_skip_acts[:, :c]) * keep
                output = output + res_skip_acts[:, c:]
            else:
                output = output + res_skip_acts
        return self.end(output)


class WaveGlow(nn.Module):
    """(mel [B, n_mel, T], mel lengths [B, 1] int32, noise [B, >= T * hop]) ->
    (audio [B, T * hop], audio lengths [B, 1] int32)."""

    def __init__(self, c: WaveGlowConfig) -> None:
        super().__init__()
        self.n_mel, self.hop = c.n_mel, c.hop_length
        self.n_group, self.n_flows = c.n_group, c.n_flows
        self.n_early_every, self.n_early_size = c.n_early_every, c.n_early_size
        self.upsample = nn.ConvTranspose1d(c.n_mel, c.n_mel, 4 * c.hop_length, stride=c.hop_length)
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        remaining = c.n_group
        for k in range(c.n_flows):
            if k % c.n_early_every == 0 and k > 0:
                remaining -= c.n_early_size
            self.convinv.append(Invertible1x1Conv(remaining))
            self.WN.append(
                WN(
                    remaining // 2,
                    c.n_mel * c.n_group,
                    c.wn_layers,
                    c.wn_channels,
                    c.wn_kernel_size,
                )
            )
        self.n_remaining = remaining

    def prepare_inverse(self) -> "WaveGlow":
        for conv in self.convinv:
            conv.prepare_inverse()
        return self

    def _grouped_spect(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel upsampled to one frame per sample, grouped like the audio: [B, n_mel*n_group, S]."""
        batch, frames = mel.size(0), mel.size(2)
        # Frame f reaches samples [f * hop, f * hop + 4 * hop): padded frames only later ones.
        spect = self.upsample(mel)[:, :, : frames * self.hop]
        groups = frames * self.hop // self.n_group
        spect = spect.reshape(batch, self.n_mel, groups, self.n_group).permute(0, 2, 1, 3)
        return spect.reshape(batch, groups, self.n_mel * self.n_group).transpose(1, 2)

    def forward(
        self, mel: torch.Tensor, mel_length: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames = mel.size(0), mel.size(2)
        spect = self._grouped_spect(mel)
        groups = spect.size(2)
        steps = torch.arange(groups, device=mel.device).unsqueeze(0)
        valid_groups = mel_length.view(-1, 1).to(torch.int64) * (self.hop // self.n_group)
        keep = (steps < valid_groups).unsqueeze(1).to(mel.dtype)
        z = noise[:, : frames * self.hop].reshape(batch, groups, self.n_group).transpose(1, 2)
        audio = z[:, : self.n_remaining]
        used = self.n_remaining
        for k in range(self.n_flows - 1, -1, -1):
            half = audio.size(1) // 2
            audio_0, audio_1 = audio[:, :half], audio[:, half:]
            output = self.WN[k](audio_0, spect, keep)
            shift, log_scale = output[:, :half], output[:, half:]
            audio_1 = (audio_1 - shift) * torch.exp(-log_scale)
            audio = self.convinv[k].reverse(torch.cat((audio_0, audio_1), dim=1))
            if k % self.n_early_every == 0 and k > 0:
                early = z[:, used : used + self.n_early_size]
                audio = torch.cat((early, audio), dim=1)
                used += self.n_early_size
        audio = (audio * keep).transpose(1, 2).reshape(batch, -1)
        return audio, (mel_length * self.hop).to(torch.int32)

    def encode(self, audio: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """The training direction, audio [B, T * hop] -> noise in the layout `forward` takes."""
        batch = mel.size(0)
        spect = self._grouped_spect(mel)
        keep = torch.ones_like(spect[:, :1])
        audio = audio.reshape(batch, -1, self.n_group).transpose(1, 2)
        early = []
        for k in range(self.n_flows):
            if k % self.n_early_every == 0 and k > 0:
                early.append(audio[:, : self.n_early_size])
                audio = audio[:, self.n_early_size :]
            audio = self.convinv[k](audio)
            half = audio.size(1) // 2
            audio_0, audio_1 = audio[:, :half], audio[:, half:]
            output = self.WN[k](audio_0, spect, keep)
            shift, log_scale = output[:, :half], output[:, half:]
            audio = torch.cat((audio_0, torch.exp(log_scale) * audio_1 + shift), dim=1)
        z = torch.cat([audio] + early[::-1], dim=1)  # the order `forward` consumes them in
        return z.transpose(1, 2).reshape(batch, -1)
