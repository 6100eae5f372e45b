"""Component `whisper_decoder`: one step of Whisper's decoder with explicit caches (a network).

New tokens, the self-attention cache of the earlier tokens and the encoder's cross-attention
cache in; the last new token's logits and the grown cache out. A generation model calls it once
per generated token.
"""

from __future__ import annotations

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.networks.whisper_decoder import WhisperStepDecoder
from modelrepo_gen.components.whisper_encoder import cross_kv_dims
from modelrepo_gen.components.whisper_source import WhisperSourceSettings, loaded, whisper_weights
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature

FP32, INT64 = "TYPE_FP32", "TYPE_INT64"
TOKENS_PER_SECOND = 8  # example caches: a little above fast speech, so parity sees long ones


class WhisperDecoder(NetworkComponent):
    settings_schema = WhisperSourceSettings

    def check(self, settings: WhisperSourceSettings, where: str) -> None:
        loaded(settings, where)  # a folder that cannot be loaded stops here, named

    def signature(self, settings: WhisperSourceSettings) -> Signature:
        layers, pair, heads, frames, dim = cross_kv_dims(settings)
        vocab = loaded(settings).model.config.vocab_size
        cache = (layers, pair, heads, -1, dim)
        return Signature(
            inputs=(
                TensorSpec("TOKENS", INT64, (-1,)),
                TensorSpec("PAST_KV", FP32, cache),
                TensorSpec("CROSS_KV", FP32, (layers, pair, heads, frames, dim)),
            ),
            outputs=(
                TensorSpec("LOGITS", FP32, (vocab,)),
                TensorSpec("PRESENT_KV", FP32, cache),
            ),
        )

    def make_module(self, settings: WhisperSourceSettings, seed: int) -> torch.nn.Module:
        return WhisperStepDecoder(loaded(settings).model).eval()

    def example_inputs(
        self, settings: WhisperSourceSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        """Two new tokens after `seconds` worth of cached ones; caches of unit scale, like the
        projections of layer-normed encoder states."""
        layers, pair, heads, frames, dim = cross_kv_dims(settings)
        vocab = loaded(settings).model.config.vocab_size
        generator = torch.Generator().manual_seed(seed)
        seen = int(seconds * TOKENS_PER_SECOND)
        tokens = torch.randint(0, vocab, (batch, 2), generator=generator)
        past = torch.randn(batch, layers, pair, heads, seen, dim, generator=generator)
        cross = torch.randn(batch, layers, pair, heads, frames, dim, generator=generator)
        return [tokens, past, cross]

    def request_checks(self, settings: WhisperSourceSettings, bounds: dict[str, int]) -> dict:
        vocab = loaded(settings).model.config.vocab_size
        return {"finite": ["CROSS_KV"], "value_range": {"TOKENS": [0, vocab - 1]}}

    def weights(self, settings: WhisperSourceSettings, where: str, seed: int) -> Weights:
        return whisper_weights(settings, where)


COMPONENTS.register("whisper_decoder")(WhisperDecoder())
