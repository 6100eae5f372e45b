"""The `pipeline` section of a CTC speech-recognition pipeline, typed and checked before work."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from omegaconf import DictConfig

from modelrepo_gen.models.mel_features import MelFeaturesConfig
from modelrepo_gen.models.mel_features_checks import check_mel_features
from modelrepo_gen.validation import check_number, require, typed

INT32_MAX = 2**31 - 1  # NUM_SAMPLES is INT32
PARITY_MAX_SECONDS = 300  # a parity shape longer than this only costs build time and memory
MAX_SAMPLE_RATE = 384_000  # the highest rate audio hardware records
# Triton model names become folder names: letters, digits, '_', '-', '.'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class CtcAsrSettings:
    name: str
    kind: str
    sample_rate: int
    max_audio_seconds: float
    features: MelFeaturesConfig
    vocabulary: list[str]


def read_ctc_asr_settings(cfg: DictConfig) -> CtcAsrSettings:
    """The typed `pipeline` section; raises UserError naming the first value that cannot work."""
    settings = typed(CtcAsrSettings, cfg.pipeline, "pipeline")
    require(
        NAME.fullmatch(settings.name) is not None,
        f"pipeline.name must start with a letter or digit and hold only letters, digits, "
        f"'_', '-' and '.' (it names the Triton models and their folders), got '{settings.name}'",
    )
    check_number(
        "pipeline.sample_rate", settings.sample_rate, at_least=1, at_most=MAX_SAMPLE_RATE, unit="Hz"
    )
    # The features run at the pipeline's rate: a second, different rate would go unnoticed.
    given = cfg.pipeline.features.get("sample_rate")
    require(
        given is None or given == settings.sample_rate,
        f"pipeline.features.sample_rate ({given}) differs from pipeline.sample_rate "
        f"({settings.sample_rate}); remove it, the features use pipeline.sample_rate",
    )
    settings.features = replace(settings.features, sample_rate=settings.sample_rate)
    check_number(
        "pipeline.max_audio_seconds",
        settings.max_audio_seconds,
        above=0,
        at_most=INT32_MAX // settings.sample_rate,
        unit=f"seconds (NUM_SAMPLES is INT32 at {settings.sample_rate} Hz)",
    )
    check_mel_features(settings.features)
    _check_vocabulary(settings.vocabulary)
    for i, shape in enumerate(cfg.parity_shapes):
        check_number(
            f"parity_shapes.{i}.seconds",
            shape.seconds,
            above=0,
            at_most=PARITY_MAX_SECONDS,
            unit="seconds (each shape runs through PyTorch and the export in this process)",
        )
    return settings


def _check_vocabulary(vocabulary: list[str]) -> None:
    require(len(vocabulary) > 0, "pipeline.vocabulary must list at least one symbol, got none")
    for i, symbol in enumerate(vocabulary):
        require(
            isinstance(symbol, str) and len(symbol) == 1,
            f"pipeline.vocabulary.{i} must be one character, got {symbol!r} (the greedy CTC "
            "decoder emits one character per class)",
        )
    seen: dict[str, int] = {}
    for i, symbol in enumerate(vocabulary):
        require(
            symbol not in seen,
            f"pipeline.vocabulary.{i} {symbol!r} repeats pipeline.vocabulary.{seen.get(symbol)}: "
            "each symbol must be a distinct class",
        )
        seen[symbol] = i
