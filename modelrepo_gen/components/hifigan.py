"""Component `hifigan`: mel spectrogram -> audio, a GAN-trained convolutional vocoder (ONNX)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.networks.hifigan import HifiGan, HifiGanConfig
from modelrepo_gen.components.speech_synthesis import (
    example_mel,
    state_dict_weights,
    with_weights,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require

FP32, INT32 = "TYPE_FP32", "TYPE_INT32"


@dataclass
class HifiGanSettings(HifiGanConfig):
    name: str = "hifigan"
    checkpoint: str | None = None
    sample_rate: int = 22050
    hop_length: int = 256  # audio samples per mel frame: the product of upsample_rates


class HifiGanComponent(NetworkComponent):
    settings_schema = HifiGanSettings
    length_of = {"AUDIO": ["AUDIO_LENGTH", 1]}

    def export_formats(self, settings: HifiGanSettings) -> tuple[str, ...]:
        # Traced into ONNX (TensorRT builds from that); not written for scripting.
        return ("onnx", "tensorrt")

    def check(self, settings: HifiGanSettings, where: str) -> None:
        for key in ("n_mel", "upsample_initial_channel", "sample_rate", "hop_length"):
            check_number(f"{where}.{key}", getattr(settings, key), at_least=1)
        rates, kernels = list(settings.upsample_rates), list(settings.upsample_kernel_sizes)
        require(
            len(rates) > 0 and len(rates) == len(kernels),
            f"{where}.upsample_rates and upsample_kernel_sizes must list one value per "
            f"upsampling layer each, got {rates} and {kernels}",
        )
        require(
            math.prod(rates) == settings.hop_length,
            f"{where}.upsample_rates {rates} multiply to {math.prod(rates)}, but hop_length is "
            f"{settings.hop_length}: each mel frame must become hop_length samples",
        )
        for rate, kernel in zip(rates, kernels):
            require(
                rate >= 1 and kernel >= rate and (kernel - rate) % 2 == 0,
                f"{where}.upsample_kernel_sizes: kernel {kernel} for rate {rate} must be >= the "
                "rate and differ from it by an even number (each layer multiplies the length)",
            )
        require(
            settings.upsample_initial_channel % 2 ** len(rates) == 0,
            f"{where}.upsample_initial_channel ({settings.upsample_initial_channel}) must "
            f"halve {len(rates)} times evenly",
        )
        resblocks = list(settings.resblock_kernel_sizes)
        require(
            len(resblocks) > 0 and len(resblocks) == len(settings.resblock_dilation_sizes),
            f"{where}.resblock_kernel_sizes and resblock_dilation_sizes must list one entry per "
            f"residual block each, got {resblocks} and {list(settings.resblock_dilation_sizes)}",
        )
        for kernel in resblocks:
            require(
                kernel >= 1 and kernel % 2 == 1,
                f"{where}.resblock_kernel_sizes must be odd numbers >= 1, got {resblocks}",
            )

    def signature(self, settings: HifiGanSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("MEL", FP32, (settings.n_mel, -1), ragged=True),
                TensorSpec("MEL_LENGTH", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("AUDIO", FP32, (-1,)),
                TensorSpec("AUDIO_LENGTH", INT32, (1,)),
            ),
        )

    def make_module(self, settings: HifiGanSettings, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return with_weights(HifiGan(settings), settings)

    def example_inputs(
        self, settings: HifiGanSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        frames_per_second = settings.sample_rate / settings.hop_length
        return example_mel(batch, seconds, seed, settings.n_mel, frames_per_second)

    def request_checks(self, settings: HifiGanSettings, bounds: dict[str, int]) -> dict:
        checks: dict = {"finite": ["MEL"], "lengths": {"MEL_LENGTH": ["MEL", 2]}}
        if "MEL" in bounds:
            checks["max_length"] = {"MEL": [bounds["MEL"], 2]}
        return checks

    def weights(self, settings: HifiGanSettings, where: str, seed: int) -> Weights:
        return state_dict_weights(settings, where, seed, lambda: HifiGan(settings), "audio")


COMPONENTS.register("hifigan")(HifiGanComponent())
