"""Whisper's timestamp rules and the segments and seek they give, on token sequences written
out by hand, and the rules against transformers' own processor on random logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelrepo_gen.components.triton_python.whisper_timestamps import (
    MAX_INITIAL_STEP,
    SAMPLES_PER_STEP,
    apply_timestamp_rules,
    window_segments,
)

EOS, NO_TIMESTAMPS, BEGIN = 50256, 50362, 50363  # tiny.en's ids
WINDOW = 480_000  # 30 s at 16 kHz
VOCABULARY = 51864


def at(seconds: float) -> int:
    """The timestamp token of `seconds` into the window."""
    return BEGIN + round(seconds / 0.02)


def samples(seconds: float) -> int:
    return round(seconds / 0.02) * SAMPLES_PER_STEP


def test_complete_segments_cut_the_window_and_the_next_starts_at_the_last_end() -> None:
    ids = [at(0), 1, 2, at(4), at(5), 3, at(9), at(27.5), 4]  # the third runs past 30 s
    segments, advance = window_segments(ids, BEGIN, WINDOW)
    assert segments == [(0, samples(4), [1, 2]), (samples(5), samples(9), [3])]
    assert advance == samples(9)  # the third segment is decoded again, whole, from 9 s


def test_a_window_ending_on_one_timestamp_is_done_whole() -> None:
    ids = [at(0), 1, at(3), at(3.5), 2, at(6)]
    segments, advance = window_segments(ids, BEGIN, WINDOW)
    assert segments == [(0, samples(3), [1]), (samples(3.5), samples(6), [2])]
    assert advance == WINDOW


def test_one_segment_ends_at_its_last_timestamp_and_the_window_is_done() -> None:
    # As Whisper's transcribe: a lone segment starts with the window.
    assert window_segments([at(0.5), 1, 2, at(7)], BEGIN, WINDOW) == (
        [(0, samples(7), [1, 2])],
        WINDOW,
    )
    # No closing timestamp: the segment lasts to the window's end (a short last window here).
    assert window_segments([at(0), 1, 2], BEGIN, 16_000) == ([(0, 16_000, [1, 2])], 16_000)


def test_segments_without_text_are_left_out_and_times_stay_inside_the_window() -> None:
    segments, advance = window_segments([at(0), at(2), at(2.5), 7, at(29.9)], BEGIN, 160_000)
    assert segments == [(samples(2.5), 160_000, [7])]  # 29.9 s lies past a 10 s window
    assert advance == 160_000
    assert window_segments([], BEGIN, WINDOW) == ([], WINDOW)


def test_without_timestamps_the_window_is_one_segment() -> None:
    assert window_segments([5, 6], None, WINDOW) == ([(0, WINDOW, [5, 6])], WINDOW)
    assert window_segments([], None, WINDOW) == ([], WINDOW)


def masked(generated: list[int], first_step: bool, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(1, VOCABULARY)).astype(np.float32)
    return apply_timestamp_rules(logits, [generated], first_step, BEGIN, EOS, NO_TIMESTAMPS)[0]


def test_the_first_token_is_a_timestamp_of_at_most_one_second() -> None:
    allowed = np.flatnonzero(np.isfinite(masked([], first_step=True)))
    assert allowed.min() >= BEGIN and allowed.max() <= BEGIN + MAX_INITIAL_STEP


def test_timestamps_come_in_pairs_and_never_go_back() -> None:
    after_text = np.isfinite(masked([at(1), 11, 12], first_step=False))
    assert not after_text[NO_TIMESTAMPS] and not after_text[BEGIN : at(1) + 1].any()
    closing = np.isfinite(masked([at(1), 11, at(2)], first_step=False))
    assert not closing[:EOS].any()  # after a segment's end: its pair, or the end of text
    assert closing[EOS] or closing[at(2) :].any()
    assert not closing[BEGIN : at(2)].any()  # no timestamp before the last
    opened = np.isfinite(masked([at(1), 11, at(2), at(2)], first_step=False))
    assert not opened[BEGIN:].any()  # a pair just closed: text comes next


@pytest.mark.parametrize("seed", range(5))
def test_the_rules_mask_as_transformers_whisper_processor_does(seed: int) -> None:
    from transformers import GenerationConfig
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

    config = GenerationConfig(
        no_timestamps_token_id=NO_TIMESTAMPS,
        eos_token_id=EOS,
        max_initial_timestamp_index=MAX_INITIAL_STEP,
    )
    prompt = [50257]
    rules = WhisperTimeStampLogitsProcessor(config, begin_index=len(prompt))
    rng = np.random.default_rng(seed)
    histories = [[], [at(0)], [at(0), 11], [at(0), 11, at(3)], [at(0), 11, at(3), at(3)]]
    for history in histories:
        # Scaled so that timestamps sometimes outweigh every text token, and sometimes not.
        logits = rng.normal(scale=4.0, size=(1, VOCABULARY)).astype(np.float32)
        ours = apply_timestamp_rules(
            logits.copy(), [history], not history, BEGIN, EOS, NO_TIMESTAMPS
        )
        ids = torch.tensor([prompt + history])
        theirs = rules(ids, torch.from_numpy(logits)).numpy()
        assert np.array_equal(np.isfinite(ours), np.isfinite(theirs)), history
