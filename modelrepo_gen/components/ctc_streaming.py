"""Component `ctc_streaming_recognizer`: a CTC pipeline served in chunks (mode=streaming), in
the python backend (triton_python/ctc_streaming_recognizer.py).

Each request is one chunk of a stream: its audio, Triton's sequence id, and the start / end
flags on the first and last chunk. The model keeps each stream's state (the audio it still
needs, the log-probabilities so far) and answers every chunk with the transcript so far. It
calls the pipeline's own feature extractor, acoustic model and decoder: every
`chunk_seconds` of audio is run through the network with `left_context_seconds` of audio before
it and `right_context_seconds` after it (Riva's left and right padding), and the decoder reads
all the log-probabilities of the stream so far.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number

FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"


@dataclass
class CtcStreamingSettings:
    sample_rate: int = 16000
    chunk_seconds: float = 0.8  # audio decoded at a time (Riva's chunk_size)
    left_context_seconds: float = 1.6  # audio before a chunk the network sees (left padding)
    right_context_seconds: float = 1.6  # audio after it: the look-ahead (right padding)
    max_chunk_seconds: float = 10.0  # the most audio one request may carry
    max_audio_seconds: float = 60.0  # what the feature extractor takes in one call
    max_streams: int = 64  # streams held at once; one more is refused
    stream_timeout_seconds: float = 60.0  # a stream idle this long is freed


def _samples(seconds: float, rate: int) -> int:
    return int(round(seconds * rate))


class CtcStreamingRecognizer(PythonComponent):
    settings_schema = CtcStreamingSettings
    code = "ctc_streaming_recognizer"

    def check(self, settings: CtcStreamingSettings, where: str) -> None:
        check_number(f"{where}.chunk_seconds", settings.chunk_seconds, above=0, unit="seconds")
        for name in ("left_context_seconds", "right_context_seconds"):
            check_number(f"{where}.{name}", getattr(settings, name), at_least=0, unit="seconds")
        check_number(f"{where}.max_streams", settings.max_streams, at_least=1)
        check_number(f"{where}.stream_timeout_seconds", settings.stream_timeout_seconds, above=0)
        segment = (
            settings.left_context_seconds
            + settings.max_chunk_seconds
            + settings.right_context_seconds
        )
        check_number(
            f"{where}.max_chunk_seconds",
            settings.max_chunk_seconds,
            at_least=settings.chunk_seconds,
            at_most=settings.max_audio_seconds
            - settings.left_context_seconds
            - settings.right_context_seconds,
            unit=f"seconds (with the contexts, {segment:g} s go through the feature extractor, "
            f"which takes at most pipeline.max_audio_seconds={settings.max_audio_seconds:g})",
        )

    def signature(self, settings: CtcStreamingSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("AUDIO_SIGNAL", FP32, (-1,), ragged=True),
                TensorSpec("NUM_SAMPLES", INT32, (1,)),
            ),
            outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)),),
            calls={
                "features": ("AUDIO_SIGNAL", "NUM_SAMPLES", "FEATURES", "FEATURE_LENGTHS"),
                "acoustic": ("FEATURES", "FEATURE_LENGTHS", "LOGPROBS", "ENCODED_LENGTHS"),
                "decoder": ("LOGPROBS", "ENCODED_LENGTHS", "TRANSCRIPT"),
            },
        )

    def parameters(self, settings: CtcStreamingSettings) -> dict[str, str]:
        rate = settings.sample_rate
        return {
            "sample_rate": str(rate),
            "chunk_samples": str(_samples(settings.chunk_seconds, rate)),
            "left_samples": str(_samples(settings.left_context_seconds, rate)),
            "right_samples": str(_samples(settings.right_context_seconds, rate)),
            "max_chunk_samples": str(_samples(settings.max_chunk_seconds, rate)),
            "max_streams": str(settings.max_streams),
            "stream_timeout_seconds": repr(float(settings.stream_timeout_seconds)),
        }


COMPONENTS.register("ctc_streaming_recognizer")(CtcStreamingRecognizer())
