"""CTC speech recognition: log-mel features -> acoustic model -> greedy CTC decoder.

Ensemble interface: AUDIO_SIGNAL (FP32 [-1]) + NUM_SAMPLES (INT32 [1]) -> TRANSCRIPT (STRING [1]).
Lengths travel with every tensor, so padded batches decode like single utterances.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig

from modelrepo_gen.exporters import EXPORTERS
from modelrepo_gen.loaders.state_dict import check_fits, load_checkpoint, read_state_dict
from modelrepo_gen.models import ARCHITECTURES
from modelrepo_gen.models.mel_features import MelFeatureExtractor
from modelrepo_gen.pipelines import PLAN_BUILDERS
from modelrepo_gen.pipelines.ctc_asr_settings import read_ctc_asr_settings
from modelrepo_gen.pipelines.exported_units import exported_unit
from modelrepo_gen.plan import (
    BuildPlan,
    Ensemble,
    EnsembleStep,
    ExportSpec,
    ModelUnit,
    TensorSpec,
)
from modelrepo_gen.serving import check_roles, serving_for
from modelrepo_gen.validation import require, typed

ROLES = ["feature_extractor", "acoustic_model", "ctc_decoder"]
FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"


def example_audio(batch: int, seconds: float, seed: int, sample_rate: int) -> list[torch.Tensor]:
    """Noise-like audio whose items have different lengths (the first is the longest)."""
    generator = torch.Generator().manual_seed(seed)
    samples = max(1, int(seconds * sample_rate))
    audio = 0.1 * torch.randn(batch, samples, generator=generator)
    lengths = [max(1, samples - i * samples // (2 * batch)) for i in range(batch)]
    return [audio, torch.tensor(lengths, dtype=torch.int32).view(-1, 1)]


def build_acoustic_module(cfg: DictConfig, num_classes: int) -> torch.nn.Module:
    arch = ARCHITECTURES.get(cfg.model.arch)
    config = typed(arch.config_schema, cfg.model, "model")
    torch.manual_seed(cfg.seed)
    module = arch.module(config, num_classes)
    if config.checkpoint:
        checkpoint = Path(config.checkpoint).expanduser().resolve()
        load_checkpoint(module, checkpoint, f"model '{config.name}'")
    return module.eval()


@PLAN_BUILDERS.register("ctc_asr")
def build_ctc_asr_plan(cfg: DictConfig) -> BuildPlan:
    settings = read_ctc_asr_settings(cfg)
    features = settings.features
    num_classes = len(settings.vocabulary) + 1
    arch = ARCHITECTURES.get(cfg.model.arch)
    model_config = typed(arch.config_schema, cfg.model, "model")
    require(
        model_config.feat_in == features.n_mels,
        f"model.feat_in ({model_config.feat_in}) must equal pipeline.features.n_mels "
        f"({features.n_mels})",
    )
    arch.check(model_config, num_classes)
    exporter = EXPORTERS.get(cfg.backend)
    require(
        cfg.precision.name in exporter.precisions,
        f"precision={cfg.precision.name} is not supported by backend={cfg.backend}",
    )
    check_roles(cfg, ROLES)
    name = settings.name
    max_samples = int(settings.max_audio_seconds * settings.sample_rate)
    max_frames = max_samples // int(round(features.window_stride * settings.sample_rate)) + 1

    def make_features() -> torch.nn.Module:
        return MelFeatureExtractor(features).eval()

    def feature_inputs(batch: int, seconds: float, seed: int) -> list[torch.Tensor]:
        return example_audio(batch, seconds, seed, settings.sample_rate)

    def acoustic_inputs(batch: int, seconds: float, seed: int) -> list[torch.Tensor]:
        with torch.no_grad():
            return list(make_features()(*feature_inputs(batch, seconds, seed)))

    feature_extractor = exported_unit(
        cfg,
        f"{name}_feature_extractor",
        "feature_extractor",
        inputs=(
            TensorSpec("AUDIO_SIGNAL", FP32, (-1,), ragged=True),
            TensorSpec("NUM_SAMPLES", INT32, (1,)),
        ),
        outputs=(
            TensorSpec("FEATURES", FP32, (features.n_mels, -1)),
            TensorSpec("FEATURE_LENGTHS", INT32, (1,)),
        ),
        export=ExportSpec(
            exporter=cfg.backend,
            # fp16 would overflow the power spectrum (values beyond 65504): features stay fp32.
            precision="fp32",
            make_module=make_features,
            make_inputs=feature_inputs,
            tolerance=float(cfg.precision.parity_tolerance),
            length_of={"FEATURES": ["FEATURE_LENGTHS", 2]},
        ),
        checks={
            "finite": ["AUDIO_SIGNAL"],
            "max_length": {"AUDIO_SIGNAL": [max_samples, 1]},
            "lengths": {"NUM_SAMPLES": ["AUDIO_SIGNAL", 1]},
        },
    )
    acoustic_model = exported_unit(
        cfg,
        f"{name}_acoustic_model",
        "acoustic_model",
        inputs=(
            TensorSpec("FEATURES", FP32, (features.n_mels, -1), ragged=True),
            TensorSpec("FEATURE_LENGTHS", INT32, (1,)),
        ),
        outputs=(
            TensorSpec("LOGPROBS", FP32, (-1, num_classes)),
            TensorSpec("ENCODED_LENGTHS", INT32, (1,)),
        ),
        export=ExportSpec(
            exporter=cfg.backend,
            precision=cfg.precision.name,
            make_module=lambda: build_acoustic_module(cfg, num_classes),
            make_inputs=acoustic_inputs,
            tolerance=float(cfg.precision.parity_tolerance),
            length_of={"LOGPROBS": ["ENCODED_LENGTHS", 1]},
        ),
        checks={
            "finite": ["FEATURES"],
            "max_length": {"FEATURES": [max_frames, 2]},
            "lengths": {"FEATURE_LENGTHS": ["FEATURES", 2]},
        },
    )
    decoder = ModelUnit(
        name=f"{name}_ctc_decoder",
        role="ctc_decoder",
        inputs=(
            TensorSpec(acoustic_model.outputs[0].name, FP32, (-1, num_classes), ragged=True),
            TensorSpec(acoustic_model.outputs[1].name, INT32, (1,)),
        ),
        outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)),),
        # Decoding is plain Python on the CPU, whatever the target.
        serving=serving_for(cfg, "ctc_decoder", "KIND_CPU"),
        platform="python",
        component="ctc_greedy_decoder",
        parameters={"vocabulary": json.dumps(settings.vocabulary)},
    )
    units = [feature_extractor, acoustic_model, decoder]

    def step(unit: ModelUnit, inputs: list[str], outputs: list[str]) -> EnsembleStep:
        return EnsembleStep(
            model_name=unit.name,
            input_map=tuple(zip((s.name for s in unit.inputs), inputs, strict=True)),
            output_map=tuple(zip((s.name for s in unit.outputs), outputs, strict=True)),
        )

    ensemble = Ensemble(
        name=name,
        max_batch_size=min(u.serving.max_batch_size for u in units),
        inputs=(TensorSpec("AUDIO_SIGNAL", FP32, (-1,)), TensorSpec("NUM_SAMPLES", INT32, (1,))),
        outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)),),
        steps=(
            step(
                feature_extractor, ["AUDIO_SIGNAL", "NUM_SAMPLES"], ["FEATURES", "FEATURE_LENGTHS"]
            ),
            step(acoustic_model, ["FEATURES", "FEATURE_LENGTHS"], ["LOGPROBS", "ENCODED_LENGTHS"]),
            step(decoder, ["LOGPROBS", "ENCODED_LENGTHS"], ["TRANSCRIPT"]),
        ),
        parameters={
            "sample_rate": str(settings.sample_rate),
            "max_audio_seconds": f"{settings.max_audio_seconds:g}",
        },
    )
    plan = BuildPlan(pipeline=name, units=units, ensemble=ensemble)
    if not model_config.checkpoint:
        plan.notes.append(
            f"WARNING: model.checkpoint is not set: '{model_config.name}' uses seeded random "
            f"weights (seed={cfg.seed}). The repository serves real plumbing but meaningless "
            "transcripts; pass model.checkpoint=PATH for a trained model."
        )
        plan.weights[acoustic_model.name] = {"source": "random", "seed": int(cfg.seed)}
    else:
        path = Path(model_config.checkpoint).expanduser().resolve()
        # Read once now, so a wrong file stops before any work (the export reads it again).
        with torch.device("meta"):
            skeleton = arch.module(model_config, num_classes)
        check_fits(read_state_dict(path), skeleton, path, f"model '{model_config.name}'")
        plan.weights[acoustic_model.name] = {"source": "checkpoint", "path": str(path)}
    return plan
