"""The in-process Whisper reference transcribes real LibriVox speech with the imported tiny.en,
the same as transformers' own Whisper generate does."""

from __future__ import annotations

import jiwer
import pytest
import torch
from transformers import WhisperFeatureExtractor

from modelrepo_gen.clients.transcribe_manifest import SPOKEN_TITLES, normalize_text
from modelrepo_gen.clients.whisper_reference import WhisperReference

MAX_WER = 0.05


def normalize(text: str, titles: bool = True) -> str:
    """The client's normalisation; titles=False leaves "Mr." as "mr" (the strict figure)."""
    normalized = normalize_text(text)
    if titles:
        return normalized
    spelled = {spoken: short for short, spoken in SPOKEN_TITLES.items()}
    return " ".join(spelled.get(word, word) for word in normalized.split())


@pytest.fixture(scope="module")
def reference(tiny_en) -> WhisperReference:
    return WhisperReference(tiny_en)


@pytest.fixture(scope="module")
def batch_ids(reference, librivox) -> list[list[int]]:
    return reference.token_ids([clip for _, clip, _ in librivox])


def test_librivox_word_error_rate(reference, batch_ids, librivox) -> None:
    skip = len(reference.facts.prompt_ids)
    hypotheses = [
        reference.tokenizer.decode(ids[skip:], skip_special_tokens=True).strip()
        for ids in batch_ids
    ]
    for (path, _, truth), text in zip(librivox, hypotheses):
        print(f"{path.stem}: {text!r} (reference: {truth!r})")
    truths = [truth for _, _, truth in librivox]
    truths = [normalize(truth) for truth in truths]
    plain = jiwer.wer(truths, [normalize(h, titles=False) for h in hypotheses])
    wer = jiwer.wer(truths, [normalize(h) for h in hypotheses])
    print(f"WER over {len(librivox)} utterances: {wer:.4f} ({plain:.4f} without title expansion)")
    assert wer <= MAX_WER
    assert hypotheses[0].startswith("And Mr. John Dashwood")


def test_every_sequence_starts_with_the_forced_prompt(batch_ids) -> None:
    for ids in batch_ids:
        assert ids[:2] == [50257, 50362]  # start of transcript, no timestamps (English-only)
        assert 50256 not in ids and all(token < 50257 for token in ids[2:])


def test_an_utterance_decodes_the_same_alone_and_with_whisper_generate(
    reference, batch_ids, librivox
) -> None:
    _, clip, _ = librivox[1]
    assert reference.token_ids([clip])[0] == batch_ids[1]
    # transformers' Whisper generate with its own feature extractor: the same tokens.
    features = WhisperFeatureExtractor()(clip, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        theirs = reference.model.generate(features.input_features, return_timestamps=False)
    assert [t for t in theirs[0].tolist() if t != 50256] == batch_ids[1][2:]


def test_with_timestamps_the_tokens_equal_whisper_generate_with_timestamps(
    reference, librivox
) -> None:
    """The timestamp rules the reference adds are transformers' own: its tokens are Whisper
    generate's with return_timestamps (which starts the answer after the start token)."""
    _, clip, _ = librivox[2]
    ids = reference.token_ids([clip], stamped=True)[0]
    assert ids[0] == 50257 and ids[1] >= 50363  # no no-timestamps token: a timestamp first
    features = WhisperFeatureExtractor()(clip, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        theirs = reference.model.generate(features.input_features, return_timestamps=True)
    assert [t for t in theirs[0].tolist() if t not in (50256, 50257)] == ids[1:]
