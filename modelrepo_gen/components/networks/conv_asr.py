"""The Jasper / QuartzNet family of 1-D convolutional CTC acoustic models.

Jasper BxR: blocks of R (conv, batch-norm, ReLU) sub-blocks with dense residuals (every block
adds a 1x1 projection of every earlier block's output). QuartzNet BxR: the same blocks with
time-channel separable convolutions (depthwise, then pointwise) and plain residuals. Citrinet:
separable blocks with squeeze-and-excitation, some striding with a strided residual. Every
convolution masks the frames past each utterance's length, so padded batches equal single runs.
"""

from dataclasses import dataclass, field
from typing import List  # noqa: UP035 (TorchScript resolves typing.List in class annotations)

import torch
from torch import nn


@dataclass
class ConvBlockConfig:
    filters: int
    kernel: int
    repeat: int = 1
    stride: int = 1
    dilation: int = 1
    residual: bool = False
    separable: bool = False
    times: int = 1  # how many identical blocks of this shape follow each other
    # Citrinet-style options (NeMo's JasperBlock): squeeze-and-excitation after the last unit,
    # only the last unit strides, and the residual projection strides with it.
    se: bool = False
    se_reduction_ratio: int = 8
    stride_last: bool = False
    residual_stride: bool = False


@dataclass
class ConvASRConfig:
    arch: str = "conv_asr"
    name: str = "conv_asr"
    checkpoint: str | None = None
    feat_in: int = 64
    dense_residual: bool = False
    blocks: list[ConvBlockConfig] = field(default_factory=list)


class MaskedConv1d(nn.Module):
    """Conv1d with 'same' padding that zeroes frames past each length and updates lengths."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.padding = dilation * (kernel - 1) // 2
        self.kernel = kernel
        self.stride = stride
        self.dilation = dilation
        self.conv = nn.Conv1d(
            in_ch,
            out_ch,
            kernel,
            stride=stride,
            dilation=dilation,
            padding=self.padding,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
        x = x * mask.unsqueeze(1).to(x.dtype)
        span = self.dilation * (self.kernel - 1)
        new_lengths = (
            torch.div(lengths + 2 * self.padding - span - 1, self.stride, rounding_mode="floor") + 1
        )
        return self.conv(x), new_lengths


class SqueezeExcite(nn.Module):
    """Scales each channel by a gate computed from its mean over the valid frames."""

    def __init__(self, channels: int, reduction_ratio: int) -> None:
        super().__init__()
        hidden = channels // reduction_ratio
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]).unsqueeze(1)
        x = x * mask.to(x.dtype)
        mean = x.sum(dim=2, keepdim=True) / lengths.view(-1, 1, 1).to(x.dtype)
        gate = torch.sigmoid(self.fc(mean.transpose(1, 2)).transpose(1, 2))
        return x * gate


class ConvUnit(nn.Module):
    """One convolution (separable or not) followed by batch norm."""

    def __init__(self, in_ch: int, out_ch: int, spec: ConvBlockConfig, stride: int) -> None:
        super().__init__()
        if spec.separable:
            self.depthwise = MaskedConv1d(in_ch, in_ch, spec.kernel, stride, spec.dilation, in_ch)
            self.pointwise = nn.Conv1d(in_ch, out_ch, 1, bias=False)
        else:
            self.depthwise = MaskedConv1d(in_ch, out_ch, spec.kernel, stride, spec.dilation)
            self.pointwise = nn.Identity()
        self.norm = nn.BatchNorm1d(out_ch, eps=1e-3)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.depthwise(x, lengths)
        return self.norm(self.pointwise(x)), lengths


class ConvBlock(nn.Module):
    """R conv units; the residual sources are added before the last ReLU."""

    def __init__(self, in_ch: int, spec: ConvBlockConfig, residual_channels: list[int]) -> None:
        super().__init__()
        units = []
        channels = in_ch
        for i in range(spec.repeat):
            last = i == spec.repeat - 1
            stride = spec.stride if last or not spec.stride_last else 1
            units.append(ConvUnit(channels, spec.filters, spec, stride))
            channels = spec.filters
        self.units = nn.ModuleList(units)
        self.se = SqueezeExcite(spec.filters, spec.se_reduction_ratio) if spec.se else None
        residual_stride = spec.stride if spec.residual_stride else 1
        self.residuals = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(ch, spec.filters, 1, stride=residual_stride, bias=False),
                nn.BatchNorm1d(spec.filters, eps=1e-3),
            )
            for ch in residual_channels
        )

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, sources: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        last = len(self.units) - 1
        for i, unit in enumerate(self.units):
            x, lengths = unit(x, lengths)
            if i < last:
                x = torch.relu(x)
        if self.se is not None:
            x = self.se(x, lengths)
        for j, project in enumerate(self.residuals):
            x = x + project(sources[j])
        return torch.relu(x), lengths


class ConvASR(nn.Module):
    """features [B, feat_in, T] + length [B, 1] i32 -> log-probs [B, T', C] + length [B, 1] i32."""

    # Per block, which earlier outputs feed its residual (-1: the block's own input).
    residual_from: List[List[int]]  # noqa: UP006 (TorchScript needs typing.List)

    def __init__(self, config: ConvASRConfig, num_classes: int) -> None:
        super().__init__()
        blocks = []
        channels = config.feat_in
        # Outputs of earlier residual-capable stages that a dense block may draw on.
        history: list[int] = []
        self.residual_from = []
        for spec in config.blocks:
            for _ in range(spec.times):
                if not spec.residual:
                    sources: list[int] = []
                elif config.dense_residual:
                    sources = list(range(len(history))) or [-1]
                else:
                    sources = [-1]
                source_channels = [channels if s == -1 else history[s] for s in sources]
                blocks.append(ConvBlock(channels, spec, source_channels))
                self.residual_from.append(sources)
                channels = spec.filters
                history.append(channels)
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv1d(channels, num_classes, 1, bias=True)

    def forward(
        self, features: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = features
        lengths = length.view(-1).long()
        outputs: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            sources: list[torch.Tensor] = []
            for s in self.residual_from[i]:
                sources.append(x if s == -1 else outputs[s])
            x, lengths = block(x, lengths, sources)
            outputs.append(x)
        logits = self.classifier(x).transpose(1, 2)
        return torch.log_softmax(logits, dim=-1), lengths.to(torch.int32).view(-1, 1)
