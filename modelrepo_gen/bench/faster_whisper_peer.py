"""The peer Whisper users run instead: faster-whisper (CTranslate2) on the same weights.

The installed tiny.en is a CTranslate2 folder (model.bin, tokenizer.json): faster-whisper
opens it as it is, offline. It transcribes the same utterances one at a time, decoding as the
served pipeline does on them (greedy or the same beams, English, no timestamps for a recording
of one window, no conditioning on earlier text, no voice-activity filter; the served temperature
fallback never samples these clean utterances again, so the peer's is off), with int8 and
float32 weights, on the machine's cores. It is a benchmark dependency only (make bench
installs requirements-bench.txt).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

COMPUTE_TYPES = ("int8", "float32")
SAMPLE_RATE = 16000


def faster_whisper_rtf(
    folder: Path,
    audios: Sequence[np.ndarray],
    passes: int,
    compute_types: Sequence[str] = COMPUTE_TYPES,
    beam_size: int = 1,
) -> dict:
    """Per compute type: real-time factor over `passes` rounds of the utterances, one at a
    time, decoded with `beam_size` beams, and the first round's transcripts."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as error:
        raise RuntimeError(
            "faster-whisper is not installed (make bench installs requirements-bench.txt)"
        ) from error
    rows = {}
    audio_s = passes * sum(len(a) for a in audios) / SAMPLE_RATE
    for compute_type in compute_types:
        model = WhisperModel(
            str(folder), device="cpu", compute_type=compute_type, cpu_threads=os.cpu_count() or 1
        )

        def transcribe(audio: np.ndarray, model=model) -> str:
            segments, _ = model.transcribe(
                audio,
                language="en",
                beam_size=beam_size,
                temperature=0.0,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            return " ".join(segment.text.strip() for segment in segments)

        transcribe(audios[0])  # warm-up
        started = time.perf_counter()
        texts = [transcribe(audio) for _ in range(passes) for audio in audios]
        wall = time.perf_counter() - started
        rows[compute_type] = {
            "audio_s": audio_s,
            "wall_s": wall,
            "rtf": wall / audio_s,
            "transcripts": texts[: len(audios)],
        }
    return rows
