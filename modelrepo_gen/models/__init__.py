"""Acoustic architectures, registered by the `arch` name their conf/model/ files use."""

from dataclasses import dataclass
from typing import Any

from modelrepo_gen.models.conv_asr import ConvASR, ConvASRConfig
from modelrepo_gen.registry import Registry


@dataclass(frozen=True)
class Architecture:
    config_schema: type
    module: Any  # callable(config, num_classes) -> nn.Module


ARCHITECTURES: Registry[Architecture] = Registry("model architecture")
ARCHITECTURES.register("conv_asr")(Architecture(ConvASRConfig, ConvASR))
