"""Component `nemo_conv_asr`: a .nemo file's ConvASREncoder + ConvASRDecoder as a ConvASR.

Settings are what pipeline asr_nemo reads from the file's encoder and decoder sections; the
weights are the file's model_weights.ckpt renamed onto ConvASR (components/nemo_weights.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from modelrepo_gen.components.base import COMPONENTS, Weights
from modelrepo_gen.components.conv_asr import ConvAsr, ConvAsrSettings
from modelrepo_gen.components.nemo_weights import renamed_weights
from modelrepo_gen.components.networks.conv_asr import ConvASR
from modelrepo_gen.core.validation import require
from modelrepo_gen.loaders.nemo_archive import read_nemo


@dataclass
class NemoConvAsrSettings(ConvAsrSettings):
    # What the file sets that NeMo uses in training only (dropout, init): for the record.
    not_used_at_inference: dict[str, Any] = field(default_factory=dict)


class NemoConvAsr(ConvAsr):
    settings_schema = NemoConvAsrSettings

    def check(self, settings: NemoConvAsrSettings, where: str) -> None:
        require(bool(settings.checkpoint), f"{where}.checkpoint must name the .nemo file to import")
        super().check(settings, where)

    def make_module(self, settings: NemoConvAsrSettings, seed: int) -> torch.nn.Module:
        # Built on the meta device and given the file's tensors: no random initialisation
        # of weights that are replaced anyway (seconds for a full-size model).
        with torch.device("meta"):
            module = ConvASR(settings, settings.num_classes)
        archive = read_nemo(settings.checkpoint)
        weights = renamed_weights(archive, module, settings.blocks)
        module.load_state_dict({k: v.clone() for k, v in weights.items()}, assign=True)
        return module.eval()

    def weights(self, settings: NemoConvAsrSettings, where: str, seed: int) -> Weights:
        # Checked now, so weights that do not fit stop the build before any work.
        archive = read_nemo(settings.checkpoint)
        with torch.device("meta"):
            skeleton = ConvASR(settings, settings.num_classes)
        renamed_weights(archive, skeleton, settings.blocks)
        return Weights({"source": "nemo", "path": str(archive.path)})


COMPONENTS.register("nemo_conv_asr")(NemoConvAsr())
