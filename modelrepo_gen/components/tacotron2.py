"""Component `tacotron2`: symbol ids -> mel spectrogram, autoregressive, exported by scripting.

Its decoder loop (stop gate, max_decoder_steps) exports only with torch.jit.script, so the
component always exports TorchScript whatever `backend=` says (the build says so in a note),
and keeps fp32 (the gate's threshold decision should not move with fp16 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.networks.tacotron2 import Tacotron2, Tacotron2Config
from modelrepo_gen.components.speech_synthesis import (
    example_symbols,
    state_dict_weights,
    with_weights,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require

FP32, INT32, INT64, BOOL = "TYPE_FP32", "TYPE_INT32", "TYPE_INT64", "TYPE_BOOL"


@dataclass
class Tacotron2Settings(Tacotron2Config):
    name: str = "tacotron2"
    checkpoint: str | None = None
    sample_rate: int = 22050  # of the audio its mel describes (for the vocoder that follows)
    hop_length: int = 256  # audio samples per mel frame
    # Symbols of one sentence at most (the front-end cuts longer ones): about 1700 decoder steps
    # at NVIDIA's ~5.6 frames per character, inside max_decoder_steps.
    max_symbols: int = 300


class Tacotron2Component(NetworkComponent):
    settings_schema = Tacotron2Settings
    keeps_fp32 = True
    length_of = {"MEL": ["MEL_LENGTH", 2]}

    def export_formats(self, settings: Tacotron2Settings) -> tuple[str, ...]:
        return ("torchscript",)

    def check(self, settings: Tacotron2Settings, where: str) -> None:
        for key in (
            "n_symbols",
            "max_symbols",
            "symbols_embedding_dim",
            "encoder_n_convolutions",
            "attention_rnn_dim",
            "attention_dim",
            "attention_location_n_filters",
            "decoder_rnn_dim",
            "prenet_dim",
            "postnet_embedding_dim",
            "postnet_n_convolutions",
            "n_mel",
            "max_decoder_steps",
            "sample_rate",
            "hop_length",
        ):
            check_number(f"{where}.{key}", getattr(settings, key), at_least=1)
        check_number(
            f"{where}.encoder_embedding_dim",
            settings.encoder_embedding_dim,
            at_least=2,
            unit="(split between the two directions of the encoder's LSTM)",
        )
        require(
            settings.encoder_embedding_dim % 2 == 0,
            f"{where}.encoder_embedding_dim must be even (split between the two directions of "
            f"the encoder's LSTM), got {settings.encoder_embedding_dim}",
        )
        for key in ("encoder_kernel_size", "attention_location_kernel_size", "postnet_kernel_size"):
            value = getattr(settings, key)
            require(
                isinstance(value, int) and value >= 1 and value % 2 == 1,
                f"{where}.{key} must be an odd number >= 1 (the length stays the same), "
                f"got {value}",
            )
        check_number(
            f"{where}.gate_threshold",
            settings.gate_threshold,
            above=0,
            below=1,
            unit="(the stop probability at which an item ends)",
        )

    def signature(self, settings: Tacotron2Settings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("SYMBOL_IDS", INT64, (-1,), ragged=True),
                TensorSpec("SYMBOL_COUNT", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("MEL", FP32, (settings.n_mel, -1)),
                TensorSpec("MEL_LENGTH", INT32, (1,)),
                TensorSpec("STOPPED", BOOL, (1,)),
            ),
            bounds={"MEL": settings.max_decoder_steps},
        )

    def make_module(self, settings: Tacotron2Settings, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return with_weights(Tacotron2(settings), settings)

    def example_inputs(
        self, settings: Tacotron2Settings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        return example_symbols(batch, seconds, seed, settings.n_symbols)

    def request_checks(self, settings: Tacotron2Settings, bounds: dict[str, int]) -> dict:
        # Ids outside the set would fail the network's run; a longer sentence costs more
        # memory than the pipeline allows (the front-end cuts sentences to max_symbols).
        longest = min(settings.max_symbols, bounds.get("SYMBOL_IDS", settings.max_symbols))
        return {
            "lengths": {"SYMBOL_COUNT": ["SYMBOL_IDS", 1]},
            "max_length": {"SYMBOL_IDS": [longest, 1]},
            "value_range": {"SYMBOL_IDS": [0, settings.n_symbols - 1]},
        }

    def weights(self, settings: Tacotron2Settings, where: str, seed: int) -> Weights:
        return state_dict_weights(
            settings, where, seed, lambda: Tacotron2(settings), "mel spectrograms"
        )


COMPONENTS.register("tacotron2")(Tacotron2Component())
