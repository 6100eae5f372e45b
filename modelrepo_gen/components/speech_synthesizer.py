"""Components `voice_synthesizer` and `acoustic_vocoder_synthesizer`: symbol ids per sentence
-> one clip of speech (python).

Both run the same python model (triton_python/speech_synthesizer.py), which calls the
pipeline's networks itself, sentence by sentence: `voice_synthesizer` calls one model (`voice`:
ids -> audio, a Piper voice); `acoustic_vocoder_synthesizer` calls an acoustic model
(`acoustic`: ids -> mel, e.g. Tacotron 2 or FastPitch) and a vocoder (`vocoder`: mel -> audio,
e.g. WaveGlow or HiFi-GAN). What those two exchange beyond ids, mel and audio is declared here,
so the YAML binds the calls and the graph check sees every tensor: PACE when `pace` is set
(FastPitch), STOPPED when `reports_stop` (Tacotron 2), NOISE when `noise_sigma` is set
(WaveGlow, noise made here from `noise_seed`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, check_range, require

BOOL, FP32, INT32, INT64 = "TYPE_BOOL", "TYPE_FP32", "TYPE_INT32", "TYPE_INT64"
SYMBOLS = ("SYMBOL_IDS", "SYMBOL_COUNT")


@dataclass
class VoiceSynthesizerSettings:
    sample_rate: int = MISSING  # of the audio the voice or vocoder gives
    sentence_silence_seconds: float = MISSING  # between two sentences of a text
    # What the voice or acoustic model it calls takes, checked here on every request: symbol
    # ids 0..num_symbols-1 and at most max_symbols of them a sentence (null: not checked).
    num_symbols: int | None = None
    max_symbols: int | None = None
    # Triton request parameters a request may set, each with the [lowest, highest] value it may
    # take: `pace` replaces the configured pace, the others go to the voice or acoustic model
    # (e.g. a Piper voice's noise_scale).
    request_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class AcousticVocoderSettings(VoiceSynthesizerSettings):
    hop_length: int = MISSING  # audio samples per mel frame
    pace: float | None = None  # sent as PACE (FastPitch: > 1 speaks faster); null: none
    reports_stop: bool = False  # the acoustic model gives STOPPED (Tacotron 2)
    noise_sigma: float | None = None  # the vocoder takes NOISE (WaveGlow); null: none
    noise_seed: int = 0  # seeds each request's noise


# The python model's settings a voice chain leaves at rest: no mel, no pace, stop or noise.
AT_REST = AcousticVocoderSettings(sample_rate=0, sentence_silence_seconds=0, hop_length=0)


def _optional(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class VoiceSynthesizer(PythonComponent):
    """One model speaks each sentence: the `voice`."""

    settings_schema: type = VoiceSynthesizerSettings
    code = "speech_synthesizer"
    chain = "voice"

    def check(self, settings: VoiceSynthesizerSettings, where: str) -> None:
        check_number(f"{where}.sample_rate", settings.sample_rate, above=0, unit="Hz")
        for key in ("num_symbols", "max_symbols"):
            if getattr(settings, key) is not None:
                check_number(f"{where}.{key}", getattr(settings, key), at_least=1)
        check_number(
            f"{where}.sentence_silence_seconds",
            settings.sentence_silence_seconds,
            at_least=0,
            at_most=10,
            unit="seconds",
        )
        ranges = {
            name: check_range(f"{where}.request_parameters.{name}", value, at_least=0)
            for name, value in settings.request_parameters.items()
        }
        pace = getattr(settings, "pace", None)
        require(
            "pace" not in ranges or pace is not None,
            f"{where}.request_parameters: 'pace' needs a default pace ({where}.pace)",
        )
        if "pace" in ranges:
            low, high = ranges["pace"]
            check_number(f"{where}.pace", pace, at_least=low, at_most=high)

    def calls(self, settings: VoiceSynthesizerSettings) -> dict[str, tuple[str, ...]]:
        return {"voice": (*SYMBOLS, "AUDIO", "AUDIO_LENGTH")}

    def signature(self, settings: VoiceSynthesizerSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("SYMBOL_IDS", INT64, (-1,), ragged=True),
                TensorSpec("SENTENCE_LENGTHS", INT32, (-1,), ragged=True),
            ),
            outputs=(
                TensorSpec("AUDIO", FP32, (-1,)),
                TensorSpec("AUDIO_LENGTH", INT32, (1,)),
                TensorSpec("TRUNCATED", BOOL, (1,)),
            ),
            calls=self.calls(settings),
        )

    def parameters(self, settings: VoiceSynthesizerSettings) -> dict[str, str]:
        mel = settings if isinstance(settings, AcousticVocoderSettings) else AT_REST
        return {
            "chain": self.chain,
            "silence_samples": str(round(settings.sentence_silence_seconds * settings.sample_rate)),
            "hop_length": str(mel.hop_length or 0),
            "pace": _optional(mel.pace),
            "reports_stop": "true" if mel.reports_stop else "false",
            "noise_sigma": _optional(mel.noise_sigma),
            "noise_seed": str(mel.noise_seed),
            "num_symbols": "" if settings.num_symbols is None else str(settings.num_symbols),
            "max_symbols": "" if settings.max_symbols is None else str(settings.max_symbols),
            "request_parameters": json.dumps(
                {name: [float(v) for v in r] for name, r in settings.request_parameters.items()},
                sort_keys=True,
            ),
        }


class AcousticVocoderSynthesizer(VoiceSynthesizer):
    """An acoustic model speaks each sentence as a mel spectrogram, a vocoder turns it into
    audio."""

    settings_schema = AcousticVocoderSettings
    chain = "acoustic_vocoder"

    def check(self, settings: AcousticVocoderSettings, where: str) -> None:
        super().check(settings, where)
        # numpy's generators take seeds 0 .. 2**128-1; a negative one failed every request.
        check_number(f"{where}.noise_seed", settings.noise_seed, at_least=0)
        require(
            settings.hop_length is not None and settings.hop_length >= 1,
            f"{where}.hop_length must be >= 1 audio samples per mel frame, "
            f"got {settings.hop_length}",
        )
        if settings.pace is not None:
            check_number(f"{where}.pace", settings.pace, above=0)
        if settings.noise_sigma is not None:
            check_number(f"{where}.noise_sigma", settings.noise_sigma, at_least=0)

    def calls(self, settings: AcousticVocoderSettings) -> dict[str, tuple[str, ...]]:
        acoustic = [*SYMBOLS, "MEL", "MEL_LENGTH"]
        acoustic += ["PACE"] if settings.pace is not None else []
        acoustic += ["STOPPED"] if settings.reports_stop else []
        vocoder = ["MEL", "MEL_LENGTH", "AUDIO", "AUDIO_LENGTH"]
        vocoder += ["NOISE"] if settings.noise_sigma is not None else []
        return {"acoustic": tuple(acoustic), "vocoder": tuple(vocoder)}


COMPONENTS.register("voice_synthesizer")(VoiceSynthesizer())
COMPONENTS.register("acoustic_vocoder_synthesizer")(AcousticVocoderSynthesizer())
