"""Whisper's temperature-fallback rules, on decoded windows written out by hand."""

from __future__ import annotations

from modelrepo_gen.components.triton_python.whisper_fallback import (
    Decoded,
    FallbackRules,
    compression_ratio,
)

RULES = FallbackRules()
SENTENCE = "He was not an ill-disposed young man."


def test_a_repeating_text_compresses_well() -> None:
    assert compression_ratio(SENTENCE) < 1.5
    assert compression_ratio("the end of the end " * 20) > 2.4
    assert compression_ratio("") == 0.0


def test_a_sure_plain_window_is_kept() -> None:
    decoded = Decoded([1, 2, 3], avg_logprob=-0.3, no_speech_prob=0.01)
    assert not RULES.needs_fallback(decoded, SENTENCE)
    assert not RULES.is_silent(decoded)


def test_a_loop_or_an_unsure_window_is_decoded_again() -> None:
    looping = Decoded([1] * 200, avg_logprob=-0.2, no_speech_prob=0.01)
    assert RULES.needs_fallback(looping, "the end of the end " * 20)
    unsure = Decoded([1, 2], avg_logprob=-1.3, no_speech_prob=0.2)
    assert RULES.needs_fallback(unsure, SENTENCE)


def test_a_silent_window_is_skipped_not_decoded_again() -> None:
    silent = Decoded([1], avg_logprob=-1.4, no_speech_prob=0.9)
    assert RULES.is_silent(silent) and not RULES.needs_fallback(silent, "You")
    # Sure of its words: not silent, whatever the no-speech token says (Whisper's rule).
    assert not RULES.is_silent(Decoded([1], avg_logprob=-0.4, no_speech_prob=0.95))
    # No no-speech probability: never silent.
    assert not RULES.is_silent(Decoded([1], avg_logprob=-3.0, no_speech_prob=None))


def test_a_threshold_set_to_none_is_not_checked() -> None:
    lenient = FallbackRules((0.0, 0.5), None, None, None)
    assert not lenient.needs_fallback(Decoded([1], -5.0, 0.99), "the end " * 50)
    assert not lenient.is_silent(Decoded([1], -5.0, 0.99))
