"""The temperature fallback of Whisper's own transcribe: when a window's decoding looks wrong
(its text repeats itself, or the model was unsure of it), the window is decoded again by
sampling at the next temperature; a window the model finds silent is skipped.

A decoded window is a Decoded: its tokens after the prompt (end-of-text left out), their
average log-probability (the end-of-text's included, over one more than their count, as
Whisper computes it) and the probability of the no-speech token right after the start of
transcript (None where the decoder did not give it).
"""

import zlib
from dataclasses import dataclass


@dataclass
class Decoded:
    ids: list
    avg_logprob: float
    no_speech_prob: float | None = None
    temperature: float = 0.0  # the one it was decoded at


@dataclass
class FallbackRules:
    """Whisper's thresholds; None leaves a check out."""

    temperatures: tuple = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # tried in turn
    compression_ratio_threshold: float | None = 2.4  # more: the text repeats itself
    logprob_threshold: float | None = -1.0  # less: the model was unsure
    no_speech_threshold: float | None = 0.6  # more (and unsure): the window is silent

    def is_silent(self, decoded: Decoded) -> bool:
        """The window holds no speech: its segments are left out."""
        if self.no_speech_threshold is None or decoded.no_speech_prob is None:
            return False
        if self.logprob_threshold is not None and decoded.avg_logprob > self.logprob_threshold:
            return False  # sure of its words, whatever the no-speech token says
        return decoded.no_speech_prob > self.no_speech_threshold

    def needs_fallback(self, decoded: Decoded, text: str) -> bool:
        """Decode again at the next temperature: too repetitive or too unsure, unless silent."""
        repeats = (
            self.compression_ratio_threshold is not None
            and compression_ratio(text) > self.compression_ratio_threshold
        )
        unsure = self.logprob_threshold is not None and decoded.avg_logprob < self.logprob_threshold
        silent = (
            self.no_speech_threshold is not None
            and decoded.no_speech_prob is not None
            and decoded.no_speech_prob > self.no_speech_threshold
        )
        return (repeats or unsure) and not silent


def compression_ratio(text: str) -> float:
    """How much zlib shrinks the text: Whisper's measure of a decoding stuck in a loop."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
