"""FastPitch: symbols -> mel spectrogram, non-autoregressive.

The layout of NVIDIA's DeepLearningExamples: an FFT (feed-forward transformer) encoder over
the symbols; duration, pitch and energy predictors (conv + ReLU + layer norm stacks) on its
output; pitch and energy embedded by a convolution and added; a length regulator repeating
each symbol's encoding for its predicted frames divided by the request's `pace` (clamped to
[min_pace, max_pace], so no pace can stretch a mel without bound); an FFT decoder
and a linear projection to the mel bands. The regulator is a cumulative sum and a comparison
with a data-dependent `arange`, so the ONNX graph's output length follows the data. Attention
and every convolution see only positions within the item's length.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# A trained model predicts ~5-7 frames per symbol; an untrained one would predict ~0 and say
# nothing, so seeded weights start the duration predictor there (a checkpoint replaces it).
INITIAL_FRAMES_PER_SYMBOL = 6.0


@dataclass
class FastPitchConfig:
    n_symbols: int = 148
    n_mel: int = 80
    symbols_embedding_dim: int = 384
    in_fft_n_layers: int = 6
    in_fft_n_heads: int = 1
    in_fft_d_head: int = 64
    in_fft_conv1d_kernel_size: int = 3
    in_fft_conv1d_filter_size: int = 1536
    out_fft_n_layers: int = 6
    out_fft_n_heads: int = 1
    out_fft_d_head: int = 64
    out_fft_conv1d_kernel_size: int = 3
    out_fft_conv1d_filter_size: int = 1536
    dur_predictor_kernel_size: int = 3
    dur_predictor_filter_size: int = 256
    dur_predictor_n_layers: int = 2
    pitch_predictor_kernel_size: int = 3
    pitch_predictor_filter_size: int = 256
    pitch_predictor_n_layers: int = 2
    pitch_embedding_kernel_size: int = 3
    energy_predictor_kernel_size: int = 3
    energy_predictor_filter_size: int = 256
    energy_predictor_n_layers: int = 2
    energy_embedding_kernel_size: int = 3
    energy: bool = True  # predict and embed energy (NeMo's FastPitch may leave it out)
    max_duration: int = 75  # frames one symbol may last (before pace)
    min_duration: float = 0.0  # frames one symbol lasts at least (NeMo's min_token_duration)
    min_pace: float = 0.25  # a request's pace is clamped to [min_pace, max_pace]
    max_pace: float = 4.0


def _padding_mask(lengths: torch.Tensor, size: torch.Tensor | int) -> torch.Tensor:
    """[B, size] bool, true within each length; `size` may be a tensor (data-dependent)."""
    positions = torch.arange(size, device=lengths.device).unsqueeze(0)
    return positions < lengths.view(-1, 1)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.qkv_net = nn.Linear(d_model, 3 * n_heads * d_head)
        self.o_net = nn.Linear(n_heads * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps = x.size(0), x.size(1)
        qkv = self.qkv_net(x).view(batch, steps, 3, self.n_heads, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, T, d_head]
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.d_head)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        attended = torch.matmul(F.softmax(scores, dim=3), v)
        attended = attended.transpose(1, 2).reshape(batch, steps, self.n_heads * self.d_head)
        return self.layer_norm(x + self.o_net(attended))


class ConvFeedForward(nn.Module):
    def __init__(self, d_model: int, d_inner: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(d_model, d_inner, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(d_inner, d_model, kernel, padding=kernel // 2)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        core = F.relu(self.conv1((x * keep).transpose(1, 2)))
        core = self.conv2(core * keep.transpose(1, 2)).transpose(1, 2)
        return self.layer_norm(x + core)


class FFTransformer(nn.Module):
    def __init__(
        self, layers: int, heads: int, d_model: int, d_head: int, d_inner: int, kernel: int
    ) -> None:
        super().__init__()
        self.d_model = d_model
        inverse_frequencies = 1 / (10000 ** (torch.arange(0.0, d_model, 2.0) / d_model))
        self.register_buffer("inverse_frequencies", inverse_frequencies, persistent=False)
        self.attention = nn.ModuleList(
            [MultiHeadAttention(d_model, heads, d_head) for _ in range(layers)]
        )
        self.feed_forward = nn.ModuleList(
            [ConvFeedForward(d_model, d_inner, kernel) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(2).to(x.dtype)
        positions = torch.arange(x.size(1), device=x.device).to(x.dtype)
        angles = positions.unsqueeze(1) * self.inverse_frequencies.unsqueeze(0)
        x = x + torch.cat((angles.sin(), angles.cos()), dim=1).unsqueeze(0) * keep
        for attention, feed_forward in zip(self.attention, self.feed_forward):
            x = attention(x, mask) * keep
            x = feed_forward(x, keep) * keep
        return x


class TemporalPredictor(nn.Module):
    """One value per position (log duration, pitch or energy) from the encoder's output."""

    def __init__(self, d_in: int, filters: int, kernel: int, layers: int) -> None:
        super().__init__()
        dims = [d_in] + [filters] * layers
        self.convs = nn.ModuleList(
            [nn.Conv1d(dims[i], filters, kernel, padding=kernel // 2) for i in range(layers)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(filters) for _ in range(layers)])
        self.fc = nn.Linear(filters, 1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = norm(F.relu(conv((x * keep).transpose(1, 2))).transpose(1, 2))
        return (self.fc(x) * keep).squeeze(2)


class FastPitch(nn.Module):
    """(symbol ids [B, N] int64, symbol counts [B, 1] int32, pace [B, 1] fp32) ->
    (mel [B, n_mel, T], mel lengths [B, 1] int32)."""

    def __init__(self, c: FastPitchConfig) -> None:
        super().__init__()
        d = c.symbols_embedding_dim
        self.min_duration, self.max_duration = c.min_duration, c.max_duration
        self.min_pace, self.max_pace = c.min_pace, c.max_pace
        self.embedding = nn.Embedding(c.n_symbols, d)
        self.encoder = FFTransformer(
            c.in_fft_n_layers,
            c.in_fft_n_heads,
            d,
            c.in_fft_d_head,
            c.in_fft_conv1d_filter_size,
            c.in_fft_conv1d_kernel_size,
        )
        self.duration_predictor = TemporalPredictor(
            d, c.dur_predictor_filter_size, c.dur_predictor_kernel_size, c.dur_predictor_n_layers
        )
        nn.init.constant_(self.duration_predictor.fc.bias, math.log(1 + INITIAL_FRAMES_PER_SYMBOL))
        self.pitch_predictor = TemporalPredictor(
            d,
            c.pitch_predictor_filter_size,
            c.pitch_predictor_kernel_size,
            c.pitch_predictor_n_layers,
        )
        self.pitch_embedding = nn.Conv1d(
            1, d, c.pitch_embedding_kernel_size, padding=c.pitch_embedding_kernel_size // 2
        )
        self.energy_predictor: TemporalPredictor | None = None
        self.energy_embedding: nn.Conv1d | None = None
        if c.energy:
            self.energy_predictor = TemporalPredictor(
                d,
                c.energy_predictor_filter_size,
                c.energy_predictor_kernel_size,
                c.energy_predictor_n_layers,
            )
            self.energy_embedding = nn.Conv1d(
                1, d, c.energy_embedding_kernel_size, padding=c.energy_embedding_kernel_size // 2
            )
        self.decoder = FFTransformer(
            c.out_fft_n_layers,
            c.out_fft_n_heads,
            d,
            c.out_fft_d_head,
            c.out_fft_conv1d_filter_size,
            c.out_fft_conv1d_kernel_size,
        )
        self.proj = nn.Linear(d, c.n_mel)

    @staticmethod
    def _embed(values: torch.Tensor, conv: nn.Conv1d, keep: torch.Tensor) -> torch.Tensor:
        return conv((values.unsqueeze(2) * keep).transpose(1, 2)).transpose(1, 2) * keep

    def forward(
        self, symbol_ids: torch.Tensor, symbol_count: torch.Tensor, pace: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _padding_mask(symbol_count.to(torch.int64), symbol_ids.size(1))
        keep = mask.unsqueeze(2).to(torch.float32)
        encoded = self.encoder(self.embedding(symbol_ids), mask)
        log_durations = self.duration_predictor(encoded, keep)
        durations = torch.clamp(torch.exp(log_durations) - 1, self.min_duration, self.max_duration)
        pitch = self.pitch_predictor(encoded, keep)
        encoded = encoded + self._embed(pitch, self.pitch_embedding, keep)
        if self.energy_predictor is not None and self.energy_embedding is not None:
            # From the encoding with pitch added, as DeepLearningExamples and NeMo predict it.
            energy = self.energy_predictor(encoded, keep)
            encoded = encoded + self._embed(energy, self.energy_embedding, keep)
        # Length regulator: symbol i covers frames [ends[i] - repeats[i], ends[i]).
        pace = torch.clamp(pace.view(-1, 1), self.min_pace, self.max_pace)
        # Rounded half up, as DeepLearningExamples and NeMo do (torch.round would halve to even).
        repeats = torch.floor(durations / pace + 0.5) * mask.to(torch.float32)
        ends = torch.cumsum(repeats, dim=1)
        # At least one frame, so every item has a mel (silent if no symbol lasts a frame).
        frame_counts = torch.clamp(ends[:, -1], min=1).to(torch.int64)
        frames = torch.arange(frame_counts.max(), device=symbol_ids.device).to(torch.float32)
        frames = frames.view(1, -1, 1)
        covers = (frames < ends.unsqueeze(1)) & (frames >= (ends - repeats).unsqueeze(1))
        regulated = torch.matmul(covers.to(torch.float32), encoded)  # [B, T, d]
        frame_mask = _padding_mask(frame_counts, frames.size(1))
        decoded = self.decoder(regulated, frame_mask)
        mel = self.proj(decoded) * frame_mask.unsqueeze(2).to(torch.float32)
        return mel.transpose(1, 2), frame_counts.to(torch.int32).unsqueeze(1)
