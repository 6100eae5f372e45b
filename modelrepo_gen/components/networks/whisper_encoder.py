"""Whisper's encoder plus every decoder layer's cross-attention keys and values.

The decoder attends to the same encoder output at every step, so the served encoder computes
those keys and values once per 30 s window; the decoder then only reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # transformers loads only when a Whisper pipeline is built
    from transformers import WhisperForConditionalGeneration


class WhisperCrossKV(nn.Module):
    """features [B, 80, 3000] -> cross-attention cache
    [B, layers, 2 (k, v), heads, 1500, head_dim]."""

    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        super().__init__()
        self.encoder = model.model.encoder
        layers = model.model.decoder.layers
        self.keys = nn.ModuleList(layer.encoder_attn.k_proj for layer in layers)
        self.values = nn.ModuleList(layer.encoder_attn.v_proj for layer in layers)
        self.heads = model.config.decoder_attention_heads

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(features).last_hidden_state
        batch, frames, width = hidden.shape
        per_layer = []
        for key, value in zip(self.keys, self.values):
            pair = torch.stack([key(hidden), value(hidden)], dim=1)  # [B, 2, frames, width]
            pair = pair.view(batch, 2, frames, self.heads, width // self.heads)
            per_layer.append(pair.transpose(2, 3))
        return torch.stack(per_layer, dim=1)
