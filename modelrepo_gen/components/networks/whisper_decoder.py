"""Whisper's decoder as one step of greedy decoding, with its caches as plain tensors.

Written from transformers' weights so it exports to ONNX with an explicit self-attention cache:
new tokens [B, S] at positions T..T+S-1, the cache of the T earlier tokens
[B, layers, 2, heads, T, head_dim] (T may be 0) and the encoder's cross-attention cache in;
the logits of the last new token and the cache grown to T+S out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # transformers loads only when a Whisper pipeline is built
    from transformers import WhisperForConditionalGeneration

NEGATIVE = -1e9  # masks a future position; finite, so a fully masked row cannot make NaN


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, S, width] -> [B, heads, S, head_dim]"""
    batch, length, width = x.shape
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None):
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores + mask
    out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, heads, S, head_dim]
    batch, heads, length, dim = out.shape
    return out.transpose(1, 2).reshape(batch, length, heads * dim)


class WhisperStepDecoder(nn.Module):
    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        super().__init__()
        decoder = model.model.decoder
        self.embed_tokens = decoder.embed_tokens
        self.embed_positions = decoder.embed_positions
        self.layers = decoder.layers
        self.layer_norm = decoder.layer_norm
        self.heads = model.config.decoder_attention_heads

    def forward(
        self, tokens: torch.Tensor, past: torch.Tensor, cross: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seen, new = past.shape[4], tokens.shape[1]
        positions = torch.arange(new, device=tokens.device) + seen
        x = self.embed_tokens(tokens) + self.embed_positions.weight[positions]
        # New token i sees every earlier token and the new ones up to itself.
        rows = positions[:, None]
        cols = torch.arange(seen + new, device=tokens.device)[None, :]
        mask = (cols > rows).to(x.dtype) * NEGATIVE
        presents = []
        for index, layer in enumerate(self.layers):
            attention = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            k = torch.cat([past[:, index, 0], _heads(attention.k_proj(h), self.heads)], dim=2)
            v = torch.cat([past[:, index, 1], _heads(attention.v_proj(h), self.heads)], dim=2)
            presents.append(torch.stack([k, v], dim=1))
            q = _heads(attention.q_proj(h), self.heads)
            x = x + attention.out_proj(_attend(q, k, v, mask))
            attention = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = _heads(attention.q_proj(h), self.heads)
            x = x + attention.out_proj(_attend(q, cross[:, index, 0], cross[:, index, 1], None))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        last = self.layer_norm(x[:, -1])
        # Output projection tied to the embedding; written as [V, D] @ [B, D, 1] so the exporter
        # keeps one copy of the matrix rather than folding in a transposed second one.
        logits = torch.matmul(self.embed_tokens.weight, last.unsqueeze(-1)).squeeze(-1)
        return logits, torch.stack(presents, dim=1)
