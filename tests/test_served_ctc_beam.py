"""decoder=ctc_beam served by the real Triton server (the CTC ASR repository every ASR test
shares): its transcripts are flashlight's called directly on the log-probabilities the served
acoustic model gives, one beam without a language model serves the greedy transcripts, and
words boosted per request come through the ensemble, bad boosts refused with the server serving
on.

asr_quartznet_beam searches with a word bigram model of the LibriVox transcripts (its words are
the lexicon); asr_quartznet_beam1 is plain beam search with one beam. Both share the acoustic
model's checkpoint with asr_quartznet (greedy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.asr_fixtures import SAMPLE_RATE
from helpers.flashlight_reference import character_spelling, lexicon_search
from helpers.served_requests import (
    connect,
    is_bad_request,
    one_utterance,
    served_logprobs,
    transcripts,
    varied_lengths,
)

from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import main

pytestmark = pytest.mark.server

SYMBOLS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


@pytest.fixture(scope="module")
def language_model(asr_builds: dict[str, Path]) -> Path:
    return asr_builds["asr_quartznet_beam"].parent / "librivox.arpa"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_beam_search_is_flashlights_on_the_served_logprobs(
    protocol: str, server: TritonServer, librivox: list, language_model: Path
) -> None:
    module, client = connect(server, protocol)
    audios = [audio for _, audio, _ in librivox]
    spell = character_spelling(SYMBOLS)
    expected = [
        lexicon_search(
            served_logprobs(module, client, "asr_quartznet_beam", audio),
            language_model,
            SYMBOLS,
            spell,
            separator=0,
        )
        for audio in audios
    ]
    got = [transcripts(module, client, "asr_quartznet_beam", *one_utterance(a))[0] for a in audios]
    assert got == expected
    # the network is random: what it says is any of the model's words, several of them
    words = set(language_model.read_text().split("\\1-grams:")[1].split())
    assert sum(len(text.split()) for text in got) >= 5 and set(" ".join(got).split()) <= words
    # batched with padding, each answer is its own
    longest = max(a.size for a in audios)
    batch = np.stack([np.pad(a, (0, longest - a.size)) for a in audios]).astype(np.float32)
    lengths = np.array([[a.size] for a in audios], dtype=np.int32)
    assert transcripts(module, client, "asr_quartznet_beam", batch, lengths) == expected


def test_one_beam_without_a_language_model_serves_the_greedy_transcripts(
    server: TritonServer, librivox: list
) -> None:
    module, client = connect(server, "http")
    for audio in varied_lengths(librivox):
        greedy = transcripts(module, client, "asr_quartznet", *one_utterance(audio))
        assert transcripts(module, client, "asr_quartznet_beam1", *one_utterance(audio)) == greedy
        assert len(greedy[0]) > 3


def test_boosted_words_come_through_the_endpoint_and_bad_boosts_are_refused(
    server: TritonServer, librivox: list
) -> None:
    module, client = connect(server, "grpc")
    audio = librivox[0][1]
    plain = transcripts(module, client, "asr_quartznet_beam", *one_utterance(audio))[0]
    absent = next(w for w in ("wood", "fire", "three", "ahead") if w not in plain.split())
    boost = {"boosted_words": f"{absent} nvidia", "boosted_words_score": 60.0}
    boosted = transcripts(
        module, client, "asr_quartznet_beam", *one_utterance(audio), parameters=boost
    )[0]
    assert absent in boosted.split() or "nvidia" in boosted.split()
    # boosting another recording's words leaves this one's answer as it was
    assert transcripts(module, client, "asr_quartznet_beam", *one_utterance(audio)) == [plain]
    bad = [
        ("asr_quartznet_beam", {"boosted_words": "wood"}, "go together"),
        ("asr_quartznet_beam", {"boosted_words": "wood", "boosted_words_score": 1e9}, "-100"),
        ("asr_quartznet_beam", {"boosted_words": "W00D", "boosted_words_score": 2}, "W00D"),
        ("asr_quartznet_beam1", {"boosted_words": "wood", "boosted_words_score": 2}, "lexicon"),
    ]
    for name, parameters, said in bad:
        with pytest.raises(Exception) as error:
            transcripts(module, client, name, *one_utterance(audio), parameters=parameters)
        assert is_bad_request(error.value) and said in str(error.value)
    assert transcripts(module, client, "asr_quartznet_beam", *one_utterance(audio)) == [plain]
    assert audio.size > SAMPLE_RATE  # a real utterance, over a second


def test_transcribe_boosts_words_from_the_command_line(
    server: TritonServer, librivox: list, capsys: pytest.CaptureFixture[str]
) -> None:
    path = librivox[0][0]
    common = ["--url", server.grpc_url, "--protocol", "grpc", "--model", "asr_quartznet_beam"]
    assert main([*common, str(path)]) == 0
    plain = capsys.readouterr().out.split("\t")[1].split()
    boosted = ["--boosted-words", "wood,fire", "--boosted-words", "ahead"]
    assert main([*common, *boosted, "--boosted-words-score", "60", str(path)]) == 0
    said = capsys.readouterr().out.split("\t")[1].split()
    assert said != plain and {"wood", "fire", "ahead"} & set(said)
    assert main([*common, "--boosted-words", "W00D", str(path)]) == 1
    assert "W00D" in capsys.readouterr().err
