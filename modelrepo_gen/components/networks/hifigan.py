"""HiFi-GAN generator (V1 / V2 / V3 by sizes): mel spectrogram -> audio, non-autoregressive.

Transposed convolutions upsample by `upsample_rates` (their product is the hop length); after
each, multi-receptive-field residual blocks (one per kernel size, dilations per block) are
averaged. Every convolution sees only frames within the item's length (zeroed past it), so a
padded batch equals single runs. Plain (not weight-normed) convolutions: weight norm only
matters for training.
"""

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


@dataclass
class HifiGanConfig:
    n_mel: int = 80
    upsample_initial_channel: int = 512
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    )


def _conv(channels: int, kernel: int, dilation: int) -> nn.Conv1d:
    return nn.Conv1d(
        channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2
    )


class ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList([_conv(channels, kernel, d) for d in dilations])
        self.convs2 = nn.ModuleList([_conv(channels, kernel, 1) for _ in dilations])

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE)) * keep
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE)) * keep
            x = xt + x
        return x


class HifiGan(nn.Module):
    """(mel [B, n_mel, T], mel lengths [B, 1] int32) ->
    (audio [B, T * hop], audio lengths [B, 1] int32)."""

    def __init__(self, c: HifiGanConfig) -> None:
        super().__init__()
        self.rates = list(c.upsample_rates)
        self.hop = 1
        for rate in self.rates:
            self.hop *= rate
        self.num_kernels = len(c.resblock_kernel_sizes)
        ch = c.upsample_initial_channel
        self.conv_pre = nn.Conv1d(c.n_mel, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)):
            in_ch, out_ch = ch // 2**i, ch // 2 ** (i + 1)
            self.ups.append(
                nn.ConvTranspose1d(in_ch, out_ch, kernel, rate, padding=(kernel - rate) // 2)
            )
            for k, dilations in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes):
                self.resblocks.append(ResBlock(out_ch, k, list(dilations)))
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.rates), 1, 7, padding=3)

    def forward(
        self, mel: torch.Tensor, mel_length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = mel_length.view(-1, 1).to(torch.int64)

        def keep_mask(x: torch.Tensor, scale: int) -> torch.Tensor:
            steps = torch.arange(x.size(2), device=x.device).unsqueeze(0)
            return (steps < lengths * scale).unsqueeze(1).to(x.dtype)

        keep = keep_mask(mel, 1)
        x = self.conv_pre(mel * keep) * keep
        scale = 1
        for i, up in enumerate(self.ups):
            scale *= self.rates[i]
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            keep = keep_mask(x, scale)
            x = x * keep
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x, keep) for block in blocks) / self.num_kernels
        audio = torch.tanh(self.conv_post(F.leaky_relu(x)) * keep).squeeze(1)
        return audio, (mel_length * self.hop).to(torch.int32)
