"""Component `whisper_features`: audio + length -> Whisper's log-mel features of one 30 s window.

As many mel bins as the model reads (its `path`): 80, or 128 for large-v3 and its turbo."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modelrepo_gen.components.audio_requests import audio_checks
from modelrepo_gen.components.base import COMPONENTS, NetworkComponent
from modelrepo_gen.components.mel_features import example_audio
from modelrepo_gen.components.networks.whisper_features import (
    WhisperFeaturesConfig,
    WhisperLogMel,
)
from modelrepo_gen.components.whisper_source import (
    WhisperSourceSettings,
    features_config,
    loaded,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import require

FP32, INT32 = "TYPE_FP32", "TYPE_INT32"
WHISPER_RATE = 16000  # Whisper's weights were trained on 16 kHz features


@dataclass
class WhisperFeatureSettings(WhisperSourceSettings):
    sample_rate: int = WHISPER_RATE


class WhisperFeatures(NetworkComponent):
    settings_schema = WhisperFeatureSettings
    # fp16 would overflow the power spectrum (values beyond 65504): features stay fp32.
    keeps_fp32 = True

    def check(self, settings: WhisperFeatureSettings, where: str) -> None:
        require(
            settings.sample_rate == WHISPER_RATE,
            f"{where}.sample_rate must be {WHISPER_RATE} (Whisper's features), got "
            f"{settings.sample_rate}; clients resample to the rate the ensemble declares",
        )
        loaded(settings, where)

    def signature(self, settings: WhisperFeatureSettings) -> Signature:
        config = features_config(settings)
        return Signature(
            inputs=(
                TensorSpec("AUDIO_SIGNAL", FP32, (-1,), ragged=True),
                TensorSpec("NUM_SAMPLES", INT32, (1,)),
            ),
            outputs=(TensorSpec("FEATURES", FP32, (config.n_mels, config.frames)),),
        )

    def make_module(self, settings: WhisperFeatureSettings, seed: int) -> torch.nn.Module:
        return WhisperLogMel(features_config(settings)).eval()

    def example_inputs(
        self, settings: WhisperFeatureSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        return example_audio(batch, seconds, seed, settings.sample_rate)

    def request_checks(self, settings: WhisperFeatureSettings, bounds: dict[str, int]) -> dict:
        # One window per item: the model calling this one splits longer audio.
        return audio_checks(WhisperFeaturesConfig().chunk_samples)


COMPONENTS.register("whisper_features")(WhisperFeatures())
