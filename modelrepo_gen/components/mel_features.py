"""Component `mel_features`: audio + length -> log-mel features + frame counts (a network)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modelrepo_gen.components.audio_requests import audio_checks
from modelrepo_gen.components.base import COMPONENTS, NetworkComponent
from modelrepo_gen.components.networks.mel_features import MelFeatureExtractor, MelFeaturesConfig
from modelrepo_gen.components.networks.mel_features_checks import check_mel_features, window_samples
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number

FP32, INT32 = "TYPE_FP32", "TYPE_INT32"
INT32_MAX = 2**31 - 1  # NUM_SAMPLES is INT32
MAX_SAMPLE_RATE = 384_000  # the highest rate audio hardware records


@dataclass
class MelFeatureSettings(MelFeaturesConfig):
    max_audio_seconds: float = 60.0  # longer requests are refused before any work


def example_audio(batch: int, seconds: float, seed: int, sample_rate: int) -> list[torch.Tensor]:
    """Noise-like audio whose items have different lengths (the first is the longest)."""
    generator = torch.Generator().manual_seed(seed)
    samples = max(1, int(seconds * sample_rate))
    audio = 0.1 * torch.randn(batch, samples, generator=generator)
    lengths = [max(1, samples - i * samples // (2 * batch)) for i in range(batch)]
    return [audio, torch.tensor(lengths, dtype=torch.int32).view(-1, 1)]


def _max_samples(settings: MelFeatureSettings) -> int:
    return int(settings.max_audio_seconds * settings.sample_rate)


class MelFeatures(NetworkComponent):
    settings_schema = MelFeatureSettings
    # fp16 would overflow the power spectrum (values beyond 65504): features stay fp32.
    keeps_fp32 = True
    length_of = {"FEATURES": ["FEATURE_LENGTHS", 2]}

    def check(self, settings: MelFeatureSettings, where: str) -> None:
        check_number(
            f"{where}.sample_rate",
            settings.sample_rate,
            at_least=1,
            at_most=MAX_SAMPLE_RATE,
            unit="Hz",
        )
        check_mel_features(settings, where)
        check_number(
            f"{where}.max_audio_seconds",
            settings.max_audio_seconds,
            above=0,
            at_most=INT32_MAX // settings.sample_rate,
            unit=f"seconds (NUM_SAMPLES is INT32 at {settings.sample_rate} Hz)",
        )

    def signature(self, settings: MelFeatureSettings) -> Signature:
        hop = window_samples(settings.window_stride, settings.sample_rate)
        return Signature(
            inputs=(
                TensorSpec("AUDIO_SIGNAL", FP32, (-1,), ragged=True),
                TensorSpec("NUM_SAMPLES", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("FEATURES", FP32, (settings.n_mels, -1)),
                TensorSpec("FEATURE_LENGTHS", INT32, (1,)),
            ),
            bounds={"FEATURES": _max_samples(settings) // hop + 1},
        )

    def make_module(self, settings: MelFeatureSettings, seed: int) -> torch.nn.Module:
        return MelFeatureExtractor(settings).eval()

    def example_inputs(
        self, settings: MelFeatureSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        return example_audio(batch, seconds, seed, settings.sample_rate)

    def request_checks(self, settings: MelFeatureSettings, bounds: dict[str, int]) -> dict:
        return audio_checks(_max_samples(settings))


COMPONENTS.register("mel_features")(MelFeatures())
