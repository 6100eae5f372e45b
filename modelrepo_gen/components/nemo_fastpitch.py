"""Component `nemo_fastpitch`: a FastPitchModel .nemo file as the `fastpitch` network.

Settings are what pipeline tts_nemo reads from the file (loaders/nemo_tts_config.py); the
weights are the file's model_weights.ckpt renamed onto FastPitch (components/nemo_tts_weights.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from modelrepo_gen.components.base import COMPONENTS, Weights
from modelrepo_gen.components.fastpitch import FastPitchComponent, FastPitchSettings
from modelrepo_gen.components.nemo_tts_weights import fastpitch_weights
from modelrepo_gen.components.networks.fastpitch import FastPitch
from modelrepo_gen.core.validation import require
from modelrepo_gen.loaders.nemo_archive import read_nemo


@dataclass
class NemoFastPitchSettings(FastPitchSettings):
    label: str = "model.acoustic"  # the setting that named the file, for messages
    # What the file sets that NeMo uses in training only (dropout): for the record.
    not_used_at_inference: dict[str, Any] = field(default_factory=dict)


class NemoFastPitch(FastPitchComponent):
    settings_schema = NemoFastPitchSettings

    def check(self, settings: NemoFastPitchSettings, where: str) -> None:
        require(bool(settings.checkpoint), f"{settings.label} must name the FastPitch .nemo file")
        super().check(settings, where)

    def make_module(self, settings: NemoFastPitchSettings, seed: int) -> torch.nn.Module:
        # Built on the meta device and given the file's tensors: nothing initialised for nothing.
        with torch.device("meta"):
            module = FastPitch(settings)
        weights = fastpitch_weights(read_nemo(settings.checkpoint, settings.label), module)
        module.load_state_dict({k: v.clone() for k, v in weights.items()}, assign=True)
        # Buffers the state dict does not hold (positional frequencies) are made again.
        for transformer in (module.encoder, module.decoder):
            d = transformer.d_model
            transformer.inverse_frequencies = 1 / (10000 ** (torch.arange(0.0, d, 2.0) / d))
        return module.eval()

    def weights(self, settings: NemoFastPitchSettings, where: str, seed: int) -> Weights:
        # Checked now, so weights that do not fit stop the build before any work.
        archive = read_nemo(settings.checkpoint, settings.label)
        with torch.device("meta"):
            fastpitch_weights(archive, FastPitch(settings))
        return Weights({"source": "nemo", "path": str(archive.path)})


COMPONENTS.register("nemo_fastpitch")(NemoFastPitch())
