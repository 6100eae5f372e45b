"""Component `nemo_hifigan`: a HifiGanModel .nemo file as the `hifigan` network.

Settings are what pipeline tts_nemo reads from the file (loaders/nemo_tts_config.py); the
generator's weights are the file's, weight norm folded (components/nemo_tts_weights.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from modelrepo_gen.components.base import COMPONENTS, Weights
from modelrepo_gen.components.hifigan import HifiGanComponent, HifiGanSettings
from modelrepo_gen.components.nemo_tts_weights import hifigan_weights
from modelrepo_gen.components.networks.hifigan import HifiGan
from modelrepo_gen.core.validation import require
from modelrepo_gen.loaders.nemo_archive import read_nemo


@dataclass
class NemoHifiGanSettings(HifiGanSettings):
    label: str = "model.vocoder"  # the setting that named the file, for messages
    # What the file sets that NeMo uses in training only: for the record.
    not_used_at_inference: dict[str, Any] = field(default_factory=dict)


class NemoHifiGan(HifiGanComponent):
    settings_schema = NemoHifiGanSettings

    def check(self, settings: NemoHifiGanSettings, where: str) -> None:
        require(bool(settings.checkpoint), f"{settings.label} must name the HiFi-GAN .nemo file")
        super().check(settings, where)

    def _fitted(self, settings: NemoHifiGanSettings, module: torch.nn.Module) -> dict:
        archive = read_nemo(settings.checkpoint, settings.label)
        return hifigan_weights(archive, module, len(settings.resblock_kernel_sizes))

    def make_module(self, settings: NemoHifiGanSettings, seed: int) -> torch.nn.Module:
        with torch.device("meta"):
            module = HifiGan(settings)
        weights = self._fitted(settings, module)
        module.load_state_dict({k: v.clone() for k, v in weights.items()}, assign=True)
        return module.eval()

    def weights(self, settings: NemoHifiGanSettings, where: str, seed: int) -> Weights:
        # Checked now, so weights that do not fit stop the build before any work.
        with torch.device("meta"):
            self._fitted(settings, HifiGan(settings))
        return Weights({"source": "nemo", "path": str(read_nemo(settings.checkpoint).path)})


COMPONENTS.register("nemo_hifigan")(NemoHifiGan())
