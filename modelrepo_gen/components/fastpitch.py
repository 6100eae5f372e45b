"""Component `fastpitch`: symbol ids + pace -> mel spectrogram, non-autoregressive (ONNX)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.networks.fastpitch import FastPitch, FastPitchConfig
from modelrepo_gen.components.speech_synthesis import (
    example_paces,
    example_symbols,
    state_dict_weights,
    with_weights,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require

FP32, INT32, INT64 = "TYPE_FP32", "TYPE_INT32", "TYPE_INT64"


@dataclass
class FastPitchSettings(FastPitchConfig):
    name: str = "fastpitch"
    checkpoint: str | None = None
    sample_rate: int = 22050  # of the audio its mel describes (for the vocoder that follows)
    hop_length: int = 256  # audio samples per mel frame
    # Symbols of one sentence at most (the front-end cuts longer ones): bounds its attention
    # (symbols^2) and its mel (symbols x max_duration / min_pace frames).
    max_symbols: int = 300


class FastPitchComponent(NetworkComponent):
    settings_schema = FastPitchSettings
    # Durations are rounded to whole frames: fp16 moves some across .5 and the mel changes
    # length (340 frames became 341 on the small model), so FastPitch stays fp32.
    keeps_fp32 = True
    length_of = {"MEL": ["MEL_LENGTH", 2]}

    def export_formats(self, settings: FastPitchSettings) -> tuple[str, ...]:
        # Traced into ONNX (TensorRT builds from that); not written for scripting.
        return ("onnx", "tensorrt")

    def check(self, settings: FastPitchSettings, where: str) -> None:
        for key in (
            "n_symbols",
            "max_symbols",
            "n_mel",
            "symbols_embedding_dim",
            "in_fft_n_layers",
            "in_fft_n_heads",
            "in_fft_d_head",
            "in_fft_conv1d_filter_size",
            "out_fft_n_layers",
            "out_fft_n_heads",
            "out_fft_d_head",
            "out_fft_conv1d_filter_size",
            "dur_predictor_filter_size",
            "dur_predictor_n_layers",
            "pitch_predictor_filter_size",
            "pitch_predictor_n_layers",
            "energy_predictor_filter_size",
            "energy_predictor_n_layers",
            "max_duration",
            "sample_rate",
            "hop_length",
        ):
            check_number(f"{where}.{key}", getattr(settings, key), at_least=1)
        require(
            settings.symbols_embedding_dim % 2 == 0,
            f"{where}.symbols_embedding_dim must be even (sine and cosine positional "
            f"encodings), got {settings.symbols_embedding_dim}",
        )
        for key in (
            "in_fft_conv1d_kernel_size",
            "out_fft_conv1d_kernel_size",
            "dur_predictor_kernel_size",
            "pitch_predictor_kernel_size",
            "energy_predictor_kernel_size",
            "pitch_embedding_kernel_size",
            "energy_embedding_kernel_size",
        ):
            value = getattr(settings, key)
            require(
                isinstance(value, int) and value >= 1 and value % 2 == 1,
                f"{where}.{key} must be an odd number >= 1 (the length stays the same), "
                f"got {value}",
            )
        check_number(
            f"{where}.min_duration",
            settings.min_duration,
            at_least=0,
            at_most=settings.max_duration,
        )
        check_number(f"{where}.min_pace", settings.min_pace, above=0)
        check_number(f"{where}.max_pace", settings.max_pace, at_least=settings.min_pace)

    def signature(self, settings: FastPitchSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("SYMBOL_IDS", INT64, (-1,), ragged=True),
                TensorSpec("SYMBOL_COUNT", INT32, (1,)),
                TensorSpec("PACE", FP32, (1,)),
            ),
            outputs=(
                TensorSpec("MEL", FP32, (settings.n_mel, -1)),
                TensorSpec("MEL_LENGTH", INT32, (1,)),
            ),
        )

    def make_module(self, settings: FastPitchSettings, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return with_weights(FastPitch(settings), settings)

    def example_inputs(
        self, settings: FastPitchSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        return [*example_symbols(batch, seconds, seed, settings.n_symbols), example_paces(batch)]

    def request_checks(self, settings: FastPitchSettings, bounds: dict[str, int]) -> dict:
        # Ids outside the set would fail the network's run; a longer sentence costs more
        # memory than the pipeline allows (the front-end cuts sentences to max_symbols).
        longest = min(settings.max_symbols, bounds.get("SYMBOL_IDS", settings.max_symbols))
        return {
            "finite": ["PACE"],
            "lengths": {"SYMBOL_COUNT": ["SYMBOL_IDS", 1]},
            "max_length": {"SYMBOL_IDS": [longest, 1]},
            "value_range": {"SYMBOL_IDS": [0, settings.n_symbols - 1]},
        }

    def weights(self, settings: FastPitchSettings, where: str, seed: int) -> Weights:
        return state_dict_weights(
            settings, where, seed, lambda: FastPitch(settings), "mel spectrograms"
        )


COMPONENTS.register("fastpitch")(FastPitchComponent())
