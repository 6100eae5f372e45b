"""Component `whisper_greedy`: audio -> token ids by greedy Whisper decoding (python backend).

The python model calls the features, encoder and decoder models itself (Triton's business-logic
scripting): audio longer than Whisper's 30 s window is cut into windows, each window is encoded
once and decoded token by token. With timestamps (by default for recordings longer than one
window) a window's timestamp tokens cut it into segments and the next window starts where its
last complete segment ended, as Whisper's own transcribe seeks. Each segment's ids end with the
end-of-text id and its start and end come in SEGMENT_TIMES, so the detokenizer can give every
segment its own text and times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from modelrepo_gen.components.audio_requests import MAX_AMPLITUDE
from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.networks.whisper_features import WhisperFeaturesConfig
from modelrepo_gen.components.triton_python.whisper_greedy import THRESHOLDS
from modelrepo_gen.components.whisper_source import WhisperSourceSettings, loaded
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number

FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"
INT32_MAX = 2**31 - 1  # NUM_SAMPLES is INT32
TIMESTAMPS = ("always", "long_audio", "never")
MAX_TEMPERATURE = 2.0
MAX_BEST_OF = 16  # samples x windows of a batch are decoded at once
TOKENIZER = "tokenizer.json"


@dataclass
class WhisperGreedySettings(WhisperSourceSettings):
    max_audio_seconds: float = 120.0  # longer requests are refused before any work
    beam_size: int | None = (
        None  # greedy only (None or 1): beam search is the ctranslate2 runtime's
    )
    language: str | None = None  # a language code; None: detected (English here: see below)
    task: str = "transcribe"  # or translate (into English; multilingual models only)
    # Which recordings are decoded with Whisper's timestamps, each window then starting where
    # the last one's last complete segment ended: always, long_audio (longer than one window)
    # or never (consecutive 30 s windows, one segment each).
    timestamps: str = "long_audio"
    # Whisper's temperature fallback (its transcribe's defaults): a window whose text repeats
    # itself (compression ratio above) or whose average log-probability is below the threshold
    # is decoded again by sampling at the next temperature (the likeliest of best_of samples);
    # a window whose no-speech probability is above its threshold, and whose words are unsure,
    # is silence and skipped. A threshold None is not checked; temperatures [0.0]: no fallback.
    # Each window's prompt starts with the text decoded so far (Whisper's transcribe does by
    # default): more consistent spelling across windows, but a window that hallucinates or
    # loops tends to carry it into the next, so it is off here, as in faster-whisper's batched
    # pipeline.
    condition_on_previous_text: bool = False
    temperatures: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    best_of: int = 5
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6


class WhisperGreedy(PythonComponent):
    settings_schema = WhisperGreedySettings
    code = "whisper_greedy"

    def check(self, settings: WhisperGreedySettings, where: str) -> None:
        rate = WhisperFeaturesConfig().sample_rate
        check_number(
            f"{where}.max_audio_seconds",
            settings.max_audio_seconds,
            above=0,
            at_most=INT32_MAX // rate,
            unit=f"seconds (NUM_SAMPLES is INT32 at {rate} Hz)",
        )
        if settings.timestamps not in TIMESTAMPS:
            raise UserError(
                f"{where}.timestamps: must be {', '.join(TIMESTAMPS)}, got {settings.timestamps!r}"
            )
        self.check_fallback(settings, where)
        self.check_decoding(settings, where)
        facts = loaded(settings, where).facts
        if settings.condition_on_previous_text and facts.start_of_previous_token_id is None:
            raise UserError(
                f"{where}.condition_on_previous_text: this model's tokenizer has no "
                "<|startofprev|> token to put the previous text after"
            )

    def check_fallback(self, settings: WhisperGreedySettings, where: str) -> None:
        temperatures = list(settings.temperatures or [])
        if not temperatures or any(
            not isinstance(t, (int, float)) or not 0 <= t <= MAX_TEMPERATURE for t in temperatures
        ):
            raise UserError(
                f"{where}.temperatures: a list of temperatures from 0 to {MAX_TEMPERATURE} tried "
                f"in turn (such as [0.0, 0.2, 0.4]), got {temperatures!r}"
            )
        if temperatures != sorted(temperatures):
            raise UserError(f"{where}.temperatures: must rise, got {temperatures!r}")
        check_number(f"{where}.best_of", settings.best_of, at_least=1, at_most=MAX_BEST_OF)
        bounds = {
            "compression_ratio_threshold": (0, 100),
            "logprob_threshold": (-100, 0),
            "no_speech_threshold": (0, 1),
        }
        for name, (low, high) in bounds.items():
            value = getattr(settings, name)
            if value is not None:
                check_number(f"{where}.{name}", value, at_least=low, at_most=high)

    def check_decoding(self, settings: WhisperGreedySettings, where: str) -> None:
        """The decoding settings this generator can serve: greedy only."""
        if settings.beam_size not in (None, 1):
            raise UserError(
                f"{where}.beam_size: the onnxruntime runtime decodes greedily (beam_size 1), "
                f"got {settings.beam_size}; beam search needs whisper_runtime=ctranslate2"
            )
        if settings.language not in (None, "en") or settings.task != "transcribe":
            asked = "language" if settings.task == "transcribe" else "task"
            raise UserError(
                f"{where}.{asked}: the onnxruntime runtime transcribes English, got "
                f"{getattr(settings, asked)!r}; other languages and translate need "
                "whisper_runtime=ctranslate2"
            )

    def signature(self, settings: WhisperGreedySettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("AUDIO_SIGNAL", FP32, (-1,), ragged=True),
                TensorSpec("NUM_SAMPLES", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("TOKENS", INT32, (-1,)),
                TensorSpec("TOKEN_COUNT", INT32, (1,)),
                TensorSpec("SEGMENT_TIMES", FP32, (-1,)),
                TensorSpec("LANGUAGE", STRING, (1,)),
            ),
            calls={
                "features": ("AUDIO_SIGNAL", "NUM_SAMPLES", "FEATURES"),
                "encoder": ("FEATURES", "CROSS_KV"),
                "decoder": ("TOKENS", "PAST_KV", "CROSS_KV", "LOGITS", "PRESENT_KV"),
            },
        )

    def parameters(self, settings: WhisperGreedySettings) -> dict[str, str]:
        facts = loaded(settings).facts
        features = WhisperFeaturesConfig()
        return {
            "prompt": json.dumps(list(facts.prompt_ids)),
            "eos": str(facts.eos_token_id),
            "no_timestamps": str(facts.no_timestamps_token_id),
            "timestamp_begin": str(facts.timestamp_begin),
            "timestamps": settings.timestamps,
            "suppress": json.dumps(list(facts.suppress_tokens)),
            "begin_suppress": json.dumps(list(facts.begin_suppress_tokens)),
            "max_length": str(facts.max_target_positions),  # tokens, the prompt included
            "window_samples": str(features.chunk_samples),
            "sample_rate": str(features.sample_rate),
            "max_samples": str(int(settings.max_audio_seconds * features.sample_rate)),
            "max_amplitude": repr(MAX_AMPLITUDE),
            "temperatures": json.dumps([float(t) for t in settings.temperatures]),
            "best_of": str(settings.best_of),
            **{
                name: ""
                if getattr(settings, name) is None
                else repr(float(getattr(settings, name)))
                for name in THRESHOLDS
            },
            "no_speech": "" if facts.no_speech_token_id is None else str(facts.no_speech_token_id),
            "tokenizer": TOKENIZER,
            "condition_on_previous_text": "true"
            if settings.condition_on_previous_text
            else "false",
            "start_of_previous": str(facts.start_of_previous_token_id or ""),
        }

    def files(self, settings: WhisperGreedySettings) -> dict[str, Path]:
        return {TOKENIZER: loaded(settings).tokenizer_json}


COMPONENTS.register("whisper_greedy")(WhisperGreedy())
