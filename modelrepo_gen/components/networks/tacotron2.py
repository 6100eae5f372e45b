"""Tacotron 2: symbols -> mel spectrogram, autoregressive with location-sensitive attention.

The layout of NVIDIA's DeepLearningExamples: a 3-convolution + BiLSTM encoder, a prenet,
an attention LSTM, location-sensitive attention, a decoder LSTM, a mel projection with a stop
gate, and a 5-convolution postnet. `forward` is inference itself, written for torch.jit.script:
the decoder state lives in local variables of one loop that stops when every item's gate has
fired or at `max_decoder_steps`. Each item stops at its own gate; its later frames are zeroed
and every convolution masks frames past each length, so a padded batch equals single runs.
The prenet runs without dropout, so the exported model is deterministic.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class Tacotron2Config:
    n_symbols: int = 148
    symbols_embedding_dim: int = 512
    encoder_n_convolutions: int = 3
    encoder_kernel_size: int = 5
    encoder_embedding_dim: int = 512
    attention_rnn_dim: int = 1024
    attention_dim: int = 128
    attention_location_n_filters: int = 32
    attention_location_kernel_size: int = 31
    decoder_rnn_dim: int = 1024
    prenet_dim: int = 256
    postnet_embedding_dim: int = 512
    postnet_kernel_size: int = 5
    postnet_n_convolutions: int = 5
    n_mel: int = 80
    max_decoder_steps: int = 2000
    gate_threshold: float = 0.5


def _conv_bn(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_ch, out_ch, kernel, padding=(kernel - 1) // 2), nn.BatchNorm1d(out_ch)
    )


class Encoder(nn.Module):
    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        dims = [c.symbols_embedding_dim] + [c.encoder_embedding_dim] * c.encoder_n_convolutions
        self.convolutions = nn.ModuleList(
            [_conv_bn(dims[i], dims[i + 1], c.encoder_kernel_size) for i in range(len(dims) - 1)]
        )
        self.lstm = nn.LSTM(
            c.encoder_embedding_dim,
            c.encoder_embedding_dim // 2,
            batch_first=True,
            bidirectional=True,
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)
        for conv in self.convolutions:
            x = F.relu(conv(x * keep))
        x = (x * keep).transpose(1, 2)
        # Packed, so the backward direction starts at each item's own last symbol.
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, _ = self.lstm(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(
            outputs, batch_first=True, total_length=x.size(1)
        )
        return memory


class Prenet(nn.Module):
    def __init__(self, in_dim: int, size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(in_dim, size, bias=False), nn.Linear(size, size, bias=False)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear in self.layers:
            x = F.relu(linear(x))
        return x


class LocationLayer(nn.Module):
    def __init__(self, n_filters: int, kernel: int, attention_dim: int) -> None:
        super().__init__()
        self.location_conv = nn.Conv1d(2, n_filters, kernel, padding=(kernel - 1) // 2, bias=False)
        self.location_dense = nn.Linear(n_filters, attention_dim, bias=False)

    def forward(self, weights_cat: torch.Tensor) -> torch.Tensor:
        return self.location_dense(self.location_conv(weights_cat).transpose(1, 2))


class Attention(nn.Module):
    """Location-sensitive attention: content plus the previous and cumulative weights."""

    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        self.query_layer = nn.Linear(c.attention_rnn_dim, c.attention_dim, bias=False)
        self.memory_layer = nn.Linear(c.encoder_embedding_dim, c.attention_dim, bias=False)
        self.v = nn.Linear(c.attention_dim, 1, bias=False)
        self.location_layer = LocationLayer(
            c.attention_location_n_filters, c.attention_location_kernel_size, c.attention_dim
        )

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        processed_memory: torch.Tensor,
        weights_cat: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        energies = self.v(
            torch.tanh(
                self.query_layer(query).unsqueeze(1)
                + self.location_layer(weights_cat)
                + processed_memory
            )
        ).squeeze(2)
        weights = F.softmax(energies.masked_fill(~mask, float("-inf")), dim=1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights


class Decoder(nn.Module):
    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        self.n_mel = c.n_mel
        self.attention_rnn_dim = c.attention_rnn_dim
        self.decoder_rnn_dim = c.decoder_rnn_dim
        self.max_decoder_steps = c.max_decoder_steps
        self.gate_threshold = c.gate_threshold
        self.prenet = Prenet(c.n_mel, c.prenet_dim)
        self.attention_rnn = nn.LSTMCell(
            c.prenet_dim + c.encoder_embedding_dim, c.attention_rnn_dim
        )
        self.attention = Attention(c)
        self.decoder_rnn = nn.LSTMCell(
            c.attention_rnn_dim + c.encoder_embedding_dim, c.decoder_rnn_dim
        )
        self.linear_projection = nn.Linear(c.decoder_rnn_dim + c.encoder_embedding_dim, c.n_mel)
        self.gate_layer = nn.Linear(c.decoder_rnn_dim + c.encoder_embedding_dim, 1)

    def forward(
        self, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames [B, n_mel, T], each item's frame count, and whether its gate fired."""
        batch, symbols = mask.shape
        processed_memory = self.attention.memory_layer(memory)
        attention_hidden = memory.new_zeros(batch, self.attention_rnn_dim)
        attention_cell = memory.new_zeros(batch, self.attention_rnn_dim)
        decoder_hidden = memory.new_zeros(batch, self.decoder_rnn_dim)
        decoder_cell = memory.new_zeros(batch, self.decoder_rnn_dim)
        attention_weights = memory.new_zeros(batch, symbols)
        cumulative_weights = memory.new_zeros(batch, symbols)
        context = memory.new_zeros(batch, memory.size(2))
        frame = memory.new_zeros(batch, self.n_mel)
        lengths = torch.zeros(batch, dtype=torch.int32, device=memory.device)
        stopped = torch.zeros(batch, dtype=torch.bool, device=memory.device)
        frames: list[torch.Tensor] = []
        for _ in range(self.max_decoder_steps):
            cell_input = torch.cat((self.prenet(frame), context), dim=1)
            attention_hidden, attention_cell = self.attention_rnn(
                cell_input, (attention_hidden, attention_cell)
            )
            weights_cat = torch.stack((attention_weights, cumulative_weights), dim=1)
            context, attention_weights = self.attention(
                attention_hidden, memory, processed_memory, weights_cat, mask
            )
            cumulative_weights = cumulative_weights + attention_weights
            decoder_hidden, decoder_cell = self.decoder_rnn(
                torch.cat((attention_hidden, context), dim=1), (decoder_hidden, decoder_cell)
            )
            hidden_context = torch.cat((decoder_hidden, context), dim=1)
            frame = self.linear_projection(hidden_context)
            gate = torch.sigmoid(self.gate_layer(hidden_context)).squeeze(1)
            running = ~stopped
            # An item that stopped keeps computing with the batch, but its frames are zero.
            frames.append(frame * running.unsqueeze(1).to(frame.dtype))
            lengths = lengths + running.to(torch.int32)
            stopped = stopped | (gate > self.gate_threshold)
            if bool(stopped.all()):
                break
        return torch.stack(frames, dim=2), lengths, stopped


class Postnet(nn.Module):
    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        n = c.postnet_n_convolutions
        dims = [c.n_mel] + [c.postnet_embedding_dim] * (n - 1) + [c.n_mel]
        self.convolutions = nn.ModuleList(
            [_conv_bn(dims[i], dims[i + 1], c.postnet_kernel_size) for i in range(n)]
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        last = len(self.convolutions) - 1
        for i, conv in enumerate(self.convolutions):
            x = conv(x * keep)
            if i < last:
                x = torch.tanh(x)
        return x * keep


class Tacotron2(nn.Module):
    """(symbol ids [B, N] int64, symbol counts [B, 1] int32) ->
    (mel [B, n_mel, T], mel lengths [B, 1] int32, stopped [B, 1] bool: false = truncated)."""

    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        self.embedding = nn.Embedding(c.n_symbols, c.symbols_embedding_dim)
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.postnet = Postnet(c)

    def forward(
        self, symbol_ids: torch.Tensor, symbol_count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        counts = symbol_count.view(-1).to(torch.int64)
        positions = torch.arange(symbol_ids.size(1), device=symbol_ids.device)
        mask = positions.unsqueeze(0) < counts.unsqueeze(1)
        embedded = self.embedding(symbol_ids).transpose(1, 2)
        memory = self.encoder(embedded, counts, mask)
        mel, lengths, stopped = self.decoder(memory, mask)
        frames = torch.arange(mel.size(2), device=mel.device)
        keep = (frames.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(mel.dtype)
        mel = mel * keep
        mel = mel + self.postnet(mel, keep)
        return mel, lengths.unsqueeze(1), stopped.unsqueeze(1)
