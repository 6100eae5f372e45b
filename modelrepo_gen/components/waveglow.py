"""Component `waveglow`: mel spectrogram + noise -> audio, a flow-based vocoder (ONNX).

The noise comes in as a tensor (already scaled by sigma), so whoever calls the model decides
how it is generated, e.g. from a seed on the server; the inverse 1x1 convolution weights are
computed before export, so the exported graph holds no matrix inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.networks.waveglow import WaveGlow, WaveGlowConfig
from modelrepo_gen.components.speech_synthesis import (
    example_mel,
    example_noise,
    state_dict_weights,
    with_weights,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require

FP32, INT32 = "TYPE_FP32", "TYPE_INT32"


@dataclass
class WaveGlowSettings(WaveGlowConfig):
    name: str = "waveglow"
    checkpoint: str | None = None
    sample_rate: int = 22050


class WaveGlowComponent(NetworkComponent):
    settings_schema = WaveGlowSettings
    length_of = {"AUDIO": ["AUDIO_LENGTH", 1]}

    def export_formats(self, settings: WaveGlowSettings) -> tuple[str, ...]:
        # Traced into ONNX (TensorRT builds from that); not written for scripting.
        return ("onnx", "tensorrt")

    def check(self, settings: WaveGlowSettings, where: str) -> None:
        for key in ("n_mel", "hop_length", "n_flows", "wn_layers", "wn_channels", "sample_rate"):
            check_number(f"{where}.{key}", getattr(settings, key), at_least=1)
        check_number(f"{where}.n_early_every", settings.n_early_every, at_least=1)
        check_number(f"{where}.n_early_size", settings.n_early_size, at_least=0)
        require(
            settings.n_group >= 2 and settings.hop_length % settings.n_group == 0,
            f"{where}.n_group must be >= 2 and divide hop_length ({settings.hop_length}), "
            f"got {settings.n_group}",
        )
        early = sum(1 for k in range(1, settings.n_flows) if k % settings.n_early_every == 0)
        remaining = settings.n_group - early * settings.n_early_size
        require(
            remaining >= 2 and remaining % 2 == 0 and settings.n_early_size % 2 == 0,
            f"{where}: n_group {settings.n_group} minus {early} early outputs of n_early_size "
            f"{settings.n_early_size} leaves {remaining} channels; the coupling layers need an "
            "even number >= 2 (and an even n_early_size)",
        )
        require(
            isinstance(settings.wn_kernel_size, int)
            and settings.wn_kernel_size >= 1
            and settings.wn_kernel_size % 2 == 1,
            f"{where}.wn_kernel_size must be an odd number >= 1, got {settings.wn_kernel_size}",
        )

    def signature(self, settings: WaveGlowSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("MEL", FP32, (settings.n_mel, -1), ragged=True),
                TensorSpec("MEL_LENGTH", INT32, (1,)),
                TensorSpec("NOISE", FP32, (-1,), ragged=True),
            ),
            outputs=(
                TensorSpec("AUDIO", FP32, (-1,)),
                TensorSpec("AUDIO_LENGTH", INT32, (1,)),
            ),
        )

    def make_module(self, settings: WaveGlowSettings, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        module = with_weights(WaveGlow(settings), settings)
        return module.prepare_inverse()

    def example_inputs(
        self, settings: WaveGlowSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        frames_per_second = settings.sample_rate / settings.hop_length
        mel, lengths = example_mel(batch, seconds, seed, settings.n_mel, frames_per_second)
        return [mel, lengths, example_noise(lengths, settings.hop_length, seed)]

    def request_checks(self, settings: WaveGlowSettings, bounds: dict[str, int]) -> dict:
        checks: dict = {
            "finite": ["MEL", "NOISE"],
            "lengths": {"MEL_LENGTH": ["MEL", 2]},
            # One noise value per audio sample, or the network's reshape fails.
            "covers": {"NOISE": ["MEL_LENGTH", settings.hop_length, 1]},
        }
        if "MEL" in bounds:
            checks["max_length"] = {"MEL": [bounds["MEL"], 2]}
        return checks

    def weights(self, settings: WaveGlowSettings, where: str, seed: int) -> Weights:
        return state_dict_weights(settings, where, seed, lambda: WaveGlow(settings), "audio")


COMPONENTS.register("waveglow")(WaveGlowComponent())
