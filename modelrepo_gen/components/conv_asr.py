"""Component `conv_asr`: Jasper / QuartzNet CTC acoustic model, features -> log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.networks.conv_asr import ConvASR, ConvASRConfig
from modelrepo_gen.components.networks.conv_asr_checks import check_conv_asr
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number
from modelrepo_gen.loaders.state_dict import check_fits, load_checkpoint, read_state_dict

FP32, INT32 = "TYPE_FP32", "TYPE_INT32"


@dataclass
class ConvAsrSettings(ConvASRConfig):
    num_classes: int = 0  # output classes, the CTC blank included


def _checkpoint(settings: ConvAsrSettings) -> Path | None:
    return Path(settings.checkpoint).expanduser().resolve() if settings.checkpoint else None


class ConvAsr(NetworkComponent):
    settings_schema = ConvAsrSettings
    length_of = {"LOGPROBS": ["ENCODED_LENGTHS", 1]}

    def check(self, settings: ConvAsrSettings, where: str) -> None:
        check_number(
            f"{where}.num_classes",
            settings.num_classes,
            at_least=2,
            unit="(the vocabulary plus the CTC blank)",
        )
        check_conv_asr(settings, settings.num_classes, where)

    def signature(self, settings: ConvAsrSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("FEATURES", FP32, (settings.feat_in, -1), ragged=True),
                TensorSpec("FEATURE_LENGTHS", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("LOGPROBS", FP32, (-1, settings.num_classes)),
                TensorSpec("ENCODED_LENGTHS", INT32, (1,)),
            ),
        )

    def make_module(self, settings: ConvAsrSettings, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        module = ConvASR(settings, settings.num_classes)
        if checkpoint := _checkpoint(settings):
            load_checkpoint(module, checkpoint, f"model '{settings.name}'")
        return module.eval()

    def request_checks(self, settings: ConvAsrSettings, bounds: dict[str, int]) -> dict:
        checks: dict = {
            "finite": ["FEATURES"],
            "lengths": {"FEATURE_LENGTHS": ["FEATURES", 2]},
        }
        if "FEATURES" in bounds:
            checks["max_length"] = {"FEATURES": [bounds["FEATURES"], 2]}
        return checks

    def weights(self, settings: ConvAsrSettings, where: str, seed: int) -> Weights:
        checkpoint = _checkpoint(settings)
        if checkpoint is None:
            return Weights(
                {"source": "random", "seed": seed},
                f"WARNING: {where}.checkpoint is not set: '{settings.name}' uses seeded random "
                f"weights (seed={seed}). The repository serves real plumbing but meaningless "
                f"transcripts; pass {where}.checkpoint=PATH for a trained model.",
            )
        # Read once now, so a wrong file stops before any work (the export reads it again).
        with torch.device("meta"):
            skeleton = ConvASR(settings, settings.num_classes)
        check_fits(read_state_dict(checkpoint), skeleton, checkpoint, f"model '{settings.name}'")
        return Weights({"source": "checkpoint", "path": str(checkpoint)})


COMPONENTS.register("conv_asr")(ConvAsr())
