"""The synthesizer's sentence logic outside Triton: what it sends the models it calls, how it
joins their audio, the server-side vocoder noise and the truncation flag.

The called models here are small numpy functions with the interface of the real networks
(acoustic: SYMBOL_IDS + SYMBOL_COUNT (+ PACE) -> MEL + MEL_LENGTH (+ STOPPED); vocoder: MEL +
MEL_LENGTH (+ NOISE) -> AUDIO + AUDIO_LENGTH), so every tensor the synthesizer builds is
checked by value; the Piper chain runs on the real server in test_served_tts_piper.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from modelrepo_gen.components.triton_python.model_kernel import BadRequest, numeric_parameters
from modelrepo_gen.components.triton_python.speech_synthesizer import (
    chain_settings,
    find_problem,
    split_sentences,
    synthesize,
    vocoder_noise,
)

N_MEL, HOP, STEP_LIMIT = 4, 3, 5
AUDIO_SCALE = 0.05
CHAIN = {
    "chain": "acoustic_vocoder",
    "silence_samples": 2,
    "hop_length": HOP,
    "pace": 1.5,
    "reports_stop": True,
    "noise_sigma": 0.5,
    "noise_seed": 7,
}


class Networks:
    """Acoustic: one mel frame per id (at most STEP_LIMIT, then STOPPED is false), every band
    holding the id * PACE. Vocoder: each frame's value repeated HOP times plus the noise, times
    AUDIO_SCALE (PCM within [-1, 1], which the synthesizer clips to)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, slot: str, inputs: dict, outputs: list[str]) -> list[np.ndarray]:
        self.calls.append((slot, {k: v.copy() for k, v in inputs.items()}))
        if slot == "acoustic":
            counts = inputs["SYMBOL_COUNT"].reshape(-1)
            frames = np.minimum(counts, STEP_LIMIT)
            mel = np.zeros((len(counts), N_MEL, frames.max()), dtype=np.float32)
            for row, (ids, n) in enumerate(zip(inputs["SYMBOL_IDS"], frames)):
                mel[row, :, :n] = ids[:n] * inputs["PACE"][row, 0]
            stopped = (counts <= STEP_LIMIT).reshape(-1, 1)
            return [mel, frames.reshape(-1, 1).astype(np.int32), stopped]
        mel, lengths = inputs["MEL"], inputs["MEL_LENGTH"].reshape(-1)
        audio = (np.repeat(mel[:, 0, :], HOP, axis=1) + inputs["NOISE"]) * AUDIO_SCALE
        return [audio, (lengths * HOP).reshape(-1, 1).astype(np.int32)]


def sentences(*rows: list[int]) -> list[np.ndarray]:
    return [np.array(r, dtype=np.int64) for r in rows]


def expected_audio(text: list[np.ndarray], chain: dict) -> np.ndarray:
    """Written out by hand: each sentence's frames, its noise drawn in order, silence between."""
    generator = np.random.default_rng(chain["noise_seed"])
    pieces = []
    for ids in text:
        frames = ids[:STEP_LIMIT].astype(np.float32) * chain["pace"]
        noise = generator.standard_normal(len(frames) * HOP, dtype=np.float32)
        pieces.append((np.repeat(frames, HOP) + noise * chain["noise_sigma"]) * AUDIO_SCALE)
        pieces.append(np.zeros(chain["silence_samples"], dtype=np.float32))
    return np.concatenate(pieces[:-1])


@pytest.mark.parametrize("chunk", [1, 2, 8])
def test_audio_does_not_depend_on_batching(chunk: int) -> None:
    texts = [sentences([3, 1, 2], [5, 5]), sentences([4]), sentences([1, 2, 3, 4], [2], [9])]
    audio, truncated = synthesize(Networks(), CHAIN, texts, chunk)
    for got, text in zip(audio, texts):
        np.testing.assert_allclose(got, expected_audio(text, CHAIN), rtol=0, atol=1e-6)
    assert truncated == [False, False, False]


def test_calls_carry_pace_counts_and_padded_noise() -> None:
    networks = Networks()
    synthesize(networks, CHAIN, [sentences([3, 1, 2], [5, 5])], chunk=8)
    (slot, acoustic), (vocoder_slot, vocoder) = networks.calls
    assert (slot, vocoder_slot) == ("acoustic", "vocoder")
    assert acoustic["SYMBOL_IDS"].tolist() == [[3, 1, 2], [5, 5, 0]]
    assert acoustic["SYMBOL_COUNT"].tolist() == [[3], [2]]
    assert acoustic["PACE"].tolist() == [[1.5], [1.5]]
    noise = vocoder["NOISE"]
    assert noise.shape == (2, 3 * HOP)  # the padded mel width, in samples
    assert np.all(noise[1, 2 * HOP :] == 0) and np.all(noise[1, : 2 * HOP] != 0)


def test_step_limit_flags_the_text_as_truncated() -> None:
    texts = [sentences([1, 2], [1] * (STEP_LIMIT + 3)), sentences([2])]
    audio, truncated = synthesize(Networks(), CHAIN, texts, chunk=8)
    assert truncated == [True, False]
    assert len(audio[0]) == (2 + STEP_LIMIT) * HOP + CHAIN["silence_samples"]


def test_no_noise_input_without_sigma() -> None:
    chain = {**CHAIN, "noise_sigma": None, "pace": None, "reports_stop": False}

    def call(slot: str, inputs: dict, outputs: list[str]) -> list[np.ndarray]:
        assert "NOISE" not in inputs and "PACE" not in inputs
        assert outputs == (
            ["MEL", "MEL_LENGTH"] if slot == "acoustic" else ["AUDIO", "AUDIO_LENGTH"]
        )
        if slot == "acoustic":
            n = inputs["SYMBOL_COUNT"]
            return [np.ones((len(n), N_MEL, int(n.max())), np.float32), n.astype(np.int32)]
        return [inputs["MEL"][:, 0, :], inputs["MEL_LENGTH"]]

    audio, truncated = synthesize(call, chain, [sentences([1, 1], [1])], chunk=4)
    assert audio[0].tolist() == [1, 1, 0, 0, 1] and truncated == [False]


def test_noise_is_seeded_per_request() -> None:
    def noise(seed: int, sigma: float) -> np.ndarray:
        generators = [np.random.default_rng(seed), np.random.default_rng(seed + 1)]
        return vocoder_noise(np.array([[2], [1]]), 2, generators, sigma, HOP)

    np.testing.assert_array_equal(noise(3, 1.0), noise(3, 1.0))
    assert not np.array_equal(noise(3, 1.0), noise(4, 1.0))
    np.testing.assert_allclose(noise(3, 0.5), noise(3, 1.0) * 0.5)
    assert not noise(3, 0.0).any()


def test_packed_sentences_and_bad_lengths() -> None:
    ids = np.array([[1, 2, 3, 4, 0]])
    assert [s.tolist() for s in split_sentences(ids[0], np.array([3, 1, 0]))] == [[1, 2, 3], [4]]
    assert find_problem(ids, np.array([[3, 1]])) is None
    assert "add up to between 1 and 5" in find_problem(ids, np.array([[3, 3]]))
    assert "add up to" in find_problem(ids, np.array([[0, 0]]))
    assert "negative" in find_problem(ids, np.array([[-1, 2]]))
    assert "one row per text" in find_problem(ids, np.array([[1], [1]]))


def test_chain_settings_from_parameters() -> None:
    params = {"chain": "voice", "silence_samples": "4410", "hop_length": "0", "pace": "",
              "reports_stop": "false", "noise_sigma": "", "noise_seed": "0",
              "request_parameters": '{"noise_w": [0.0, 2.0]}'}  # fmt: skip
    settings = chain_settings(params)
    assert settings["pace"] is None and settings["noise_sigma"] is None
    assert settings["silence_samples"] == 4410 and settings["reports_stop"] is False
    assert settings["request_parameters"] == {"noise_w": [0.0, 2.0]}


def test_request_parameters_are_numbers_within_their_ranges() -> None:
    ranges = {"pace": [0.25, 4.0], "noise_w": [0.0, 2.0]}
    assert numeric_parameters("", ranges) == {}
    assert numeric_parameters('{"pace": 1.5, "noise_w": "0"}', ranges) == {
        "noise_w": 0.0,
        "pace": 1.5,
    }
    assert numeric_parameters('{"pace": 4, "noise_w": 2}', ranges) == {"noise_w": 2, "pace": 4}
    for raw, message in [
        ('{"speed": 2}', "unknown request parameter 'speed' (this model takes: noise_w, pace)"),
        ('{"pace": -1}', "request parameter 'pace' must be a number from 0.25 to 4, got -1"),
        ('{"pace": 0}', "request parameter 'pace' must be a number from 0.25 to 4, got 0"),
        ('{"pace": 1000}', "request parameter 'pace' must be a number from 0.25 to 4, got 1000"),
        ('{"pace": "fast"}', "must be a number from 0.25 to 4, got 'fast'"),
        ('{"pace": true}', "must be a number from 0.25 to 4, got True"),
        ('{"pace": "nan"}', "must be a number from 0.25 to 4, got 'nan'"),
        ('{"noise_w": "inf"}', "request parameter 'noise_w' must be a number from 0 to 2"),
    ]:
        with pytest.raises(BadRequest, match=re.escape(message)):
            numeric_parameters(raw, ranges)


def test_audio_is_clipped_to_full_scale() -> None:
    """An untrained or loud vocoder can overshoot; the endpoint gives PCM in [-1, 1]."""

    def loud(slot: str, inputs: dict, outputs: list[str]) -> list[np.ndarray]:
        networks = Networks()
        got = networks(slot, inputs, outputs)
        return [got[0] / AUDIO_SCALE * 10, got[1]] if slot == "vocoder" else got

    (audio,), _ = synthesize(loud, CHAIN, [sentences([3, 1, 2])], chunk=8)
    assert audio.max() == 1.0 and audio.min() >= -1.0
