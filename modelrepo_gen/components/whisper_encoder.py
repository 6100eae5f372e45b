"""Component `whisper_encoder`: log-mel features of a 30 s window -> the decoder's
cross-attention keys and values, computed once per window (a network)."""

from __future__ import annotations

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.mel_features import example_audio
from modelrepo_gen.components.networks.whisper_encoder import WhisperCrossKV
from modelrepo_gen.components.networks.whisper_features import WhisperLogMel
from modelrepo_gen.components.whisper_source import (
    WhisperSourceSettings,
    features_config,
    loaded,
    whisper_weights,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature

FP32 = "TYPE_FP32"


def cross_kv_dims(settings: WhisperSourceSettings) -> tuple[int, ...]:
    """[layers, 2 (k, v), heads, encoder frames, head_dim] of the model in the folder."""
    config = loaded(settings).model.config
    heads = config.decoder_attention_heads
    return (
        config.decoder_layers,
        2,
        heads,
        config.max_source_positions,
        config.d_model // heads,
    )


class WhisperEncoder(NetworkComponent):
    settings_schema = WhisperSourceSettings

    def check(self, settings: WhisperSourceSettings, where: str) -> None:
        loaded(settings, where)  # a folder that cannot be loaded stops here, named

    def signature(self, settings: WhisperSourceSettings) -> Signature:
        config = features_config(settings)
        return Signature(
            inputs=(TensorSpec("FEATURES", FP32, (config.n_mels, config.frames)),),
            outputs=(TensorSpec("CROSS_KV", FP32, cross_kv_dims(settings)),),
        )

    def make_module(self, settings: WhisperSourceSettings, seed: int) -> torch.nn.Module:
        return WhisperCrossKV(loaded(settings).model).eval()

    def example_inputs(
        self, settings: WhisperSourceSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        # Features of noise-like audio: the value range the served front end gives.
        with torch.no_grad():
            front_end = WhisperLogMel(features_config(settings))
            return [front_end(*example_audio(batch, seconds, seed, 16000))]

    def request_checks(self, settings: WhisperSourceSettings, bounds: dict[str, int]) -> dict:
        return {"finite": ["FEATURES"]}

    def weights(self, settings: WhisperSourceSettings, where: str, seed: int) -> Weights:
        return whisper_weights(settings, where)


COMPONENTS.register("whisper_encoder")(WhisperEncoder())
