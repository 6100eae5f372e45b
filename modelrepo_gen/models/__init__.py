"""Acoustic architectures, registered by the `arch` name their conf/model/ files use."""

from dataclasses import dataclass
from typing import Any

from modelrepo_gen.models.conv_asr import ConvASR, ConvASRConfig
from modelrepo_gen.models.conv_asr_checks import check_conv_asr
from modelrepo_gen.registry import Registry


@dataclass(frozen=True)
class Architecture:
    config_schema: type
    module: Any  # callable(config, num_classes) -> nn.Module
    check: Any  # callable(config, num_classes) -> None; raises UserError before any work


ARCHITECTURES: Registry[Architecture] = Registry("model architecture")
ARCHITECTURES.register("conv_asr")(Architecture(ConvASRConfig, ConvASR, check_conv_asr))
