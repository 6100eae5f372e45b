"""CTC beam search (decoder=ctc_beam, flashlight-text) outside the server: one beam is greedy
decoding, a word language model corrects what the network is unsure of as flashlight called
directly does, boosted words win, and builds refuse language models and lexicons that cannot
serve, by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentencepiece
from helpers.flashlight_reference import (
    character_spelling,
    lexicon_search,
    sentencepiece_spelling,
)
from helpers.language_models import spelled_logprobs, write_bigram_arpa
from helpers.nemo_fixtures import FIXTURES
from helpers.project import compose_config

from modelrepo_gen.components.triton_python.ctc_beam_search import (
    CtcBeamSearch,
    character_tokens,
    read_lexicon,
    sentencepiece_tokens,
)
from modelrepo_gen.components.triton_python.ctc_greedy_decoder import greedy_decode
from modelrepo_gen.components.triton_python.ctc_sentencepiece_decoder import greedy_ids
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders import nemo_config
from modelrepo_gen.loaders.nemo_archive import read_nemo
from modelrepo_gen.plan.resolver import resolve

SYMBOLS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
SENTENCES = ["the cat sat on the mat", "a cat is on a mat", "the kat is a name", "she sat"]
OPTIONS = {
    "beam_size": 32,
    "beam_size_token": len(SYMBOLS) + 1,
    "beam_threshold": 20.0,
    "lm_weight": 0.8,
    "word_insertion_score": 1.0,
}
GREEDY = {**OPTIONS, "beam_size": 1, "lm_weight": 0.0}


def random_logprobs(rng: np.random.Generator, frames: int, classes: int) -> np.ndarray:
    logits = rng.normal(0.0, 3.0, (frames, classes)).astype(np.float32)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


@pytest.fixture(scope="module")
def arpa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bigram_arpa(SENTENCES, tmp_path_factory.mktemp("lm") / "cats.arpa")


@pytest.fixture(scope="module")
def citrinet_tokenizer() -> sentencepiece.SentencePieceProcessor:
    archive = read_nemo(str(FIXTURES / "citrinet_like.nemo"))
    path = archive.member(nemo_config.tokenizer_reference(archive), "tokenizer")
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


def test_one_beam_without_a_language_model_is_greedy_decoding() -> None:
    search = CtcBeamSearch(character_tokens(SYMBOLS), GREEDY)
    rng = np.random.default_rng(0)
    for _ in range(40):
        logprobs = random_logprobs(rng, int(rng.integers(1, 120)), len(SYMBOLS) + 1)
        expected = greedy_decode(logprobs, len(logprobs), SYMBOLS)
        assert search.decode(logprobs) == expected
    assert search.decode(np.zeros((0, len(SYMBOLS) + 1), np.float32)) == ""


def test_one_beam_is_greedy_for_sentencepiece_tokens(citrinet_tokenizer) -> None:
    tokens = sentencepiece_tokens(citrinet_tokenizer)
    classes = len(tokens.symbols) + 1
    search = CtcBeamSearch(tokens, {**GREEDY, "beam_size_token": classes})
    rng = np.random.default_rng(1)
    texts = []
    for _ in range(20):
        logprobs = random_logprobs(rng, int(rng.integers(5, 80)), classes)
        expected = citrinet_tokenizer.decode_ids(greedy_ids(logprobs, len(logprobs), classes - 1))
        texts.append(search.decode(logprobs))
        assert texts[-1] == expected
    assert len(set(texts)) == len(texts)  # distinct texts: the comparison means something


def test_the_language_model_corrects_an_unsure_letter_as_flashlight_does(arpa: Path) -> None:
    # The network leans to "kat" (k 0.5 likelier than c), which the model finds after "the"
    # far less likely than "cat".
    logprobs = spelled_logprobs("the cat sat", SYMBOLS, {4: ("k", 0.5)})
    plain = CtcBeamSearch(character_tokens(SYMBOLS), {**OPTIONS, "lm_weight": 0.0})
    assert plain.decode(logprobs) == "the kat sat"
    search = CtcBeamSearch(character_tokens(SYMBOLS), OPTIONS, arpa)
    assert search.decode(logprobs) == "the cat sat"
    rng = np.random.default_rng(2)
    spell = character_spelling(SYMBOLS)
    for _ in range(10):  # any log-probabilities: the same words as flashlight called directly
        noisy = random_logprobs(rng, int(rng.integers(10, 150)), len(SYMBOLS) + 1)
        expected = lexicon_search(noisy, arpa, SYMBOLS, spell, separator=0)
        assert search.decode(noisy) == expected


def test_sentencepiece_search_with_a_language_model_is_flashlights(
    arpa: Path, citrinet_tokenizer
) -> None:
    tokens = sentencepiece_tokens(citrinet_tokenizer)
    classes = len(tokens.symbols) + 1
    search = CtcBeamSearch(tokens, {**OPTIONS, "beam_size_token": classes}, arpa)
    spell = sentencepiece_spelling(citrinet_tokenizer)
    words = set(" ".join(SENTENCES).split())
    assert search.lexicon_size() == len({word for word in words if spell(word)}) >= 5
    rng = np.random.default_rng(3)
    texts = []
    for _ in range(10):
        logprobs = random_logprobs(rng, int(rng.integers(10, 120)), classes)
        texts.append(search.decode(logprobs))
        assert texts[-1] == lexicon_search(logprobs, arpa, tokens.symbols, spell, separator=None)
    assert any(texts) and set(" ".join(texts).split()) <= set(" ".join(SENTENCES).split())


def test_boosted_words_win_and_words_outside_the_lexicon_can_be_boosted(arpa: Path) -> None:
    search = CtcBeamSearch(character_tokens(SYMBOLS), OPTIONS, arpa)
    unsure = spelled_logprobs("the cat sat", SYMBOLS, {4: ("k", 0.5)})
    assert search.decode(unsure) == "the cat sat"
    assert search.decode(unsure, {"kat": 5.0}) == "the kat sat"
    assert search.decode(unsure, {"cat": -20.0}) == "the kat sat"  # a negative boost avoids
    # "zat" is no word of the model: boosted, it is spelled and added for that request only
    outside = spelled_logprobs("the zat sat", SYMBOLS)
    assert "zat" not in search.decode(outside)
    assert search.decode(outside, {"zat": 3.0}) == "the zat sat"
    assert "zat" not in search.decode(outside)
    assert search.unspellable(["zat", "Zat", "x1"]) == ["Zat", "x1"]


def ctc_beam_plan(overrides: list[str]):
    return resolve(compose_config(["pipeline=asr_quartznet", "decoder=ctc_beam", *overrides]))


def test_the_build_refuses_language_models_and_lexicons_that_cannot_serve(
    tmp_path: Path, arpa: Path
) -> None:
    def refused(*overrides: str) -> str:
        with pytest.raises(UserError) as error:
            ctc_beam_plan(list(overrides))
        return str(error.value)

    assert "is not a file" in refused(f"decoder.lm_path={tmp_path / 'none.arpa'}")
    binary = tmp_path / "model.binary"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\x00" + b"\x01" * 64)
    assert "give decoder.lexicon_path too" in refused(f"decoder.lm_path={binary}")
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("cat c a t\nsat\n")
    message = refused(f"decoder.lm_path={binary}", f"decoder.lexicon_path={lexicon}")
    assert "cannot be loaded" in message and "model.binary" in message
    truncated = tmp_path / "truncated.arpa"
    truncated.write_text(arpa.read_text()[: len(arpa.read_text()) // 2])
    assert "cannot be loaded" in refused(f"decoder.lm_path={truncated}")
    shouting = write_bigram_arpa(["THE CAT"], tmp_path / "upper.arpa")
    shouting.write_text(shouting.read_text().replace("the", "THE").replace("cat", "CAT"))
    assert "none of the words" in refused(f"decoder.lm_path={shouting}")
    assert "decoder.beam_size must be >= 1" in refused("decoder.beam_size=0")
    # a lexicon alone: only its words, spelled by the model's letters or as written
    plan = ctc_beam_plan([f"decoder.lexicon_path={lexicon}"])
    assert any(unit.role == "ctc_decoder" for unit in plan.units)


def test_asr_nemo_takes_beam_search_over_the_files_tokens(arpa: Path) -> None:
    plan = resolve(
        compose_config(
            [
                "pipeline=asr_nemo",
                f"model.checkpoint={FIXTURES / 'citrinet_like.nemo'}",
                "decoder=ctc_beam",
                f"decoder.lm_path={arpa}",
            ]
        )
    )
    (decoder,) = [unit for unit in plan.units if unit.role == "ctc_decoder"]
    assert decoder.component == "ctc_beam_decoder"
    assert decoder.parameters["tokenizer"] and decoder.parameters["vocabulary"] == ""
    assert decoder.parameters["language_model"] == "language_model.arpa"
    greedy = resolve(
        compose_config(["pipeline=asr_nemo", f"model.checkpoint={FIXTURES / 'citrinet_like.nemo'}"])
    )
    assert [u.component for u in greedy.units if u.role == "ctc_decoder"] == [
        "ctc_sentencepiece_decoder"
    ]


def test_a_lexicon_spells_words_as_written_or_in_the_models_letters(tmp_path: Path) -> None:
    lexicon = tmp_path / "lexicon.txt"
    # "feline" is written c a t (wav2letter's `|` separator is ignored); "sat" is spelled
    lexicon.write_text("feline c a t |\nsat\nthe t h e\n")
    search = CtcBeamSearch(character_tokens(SYMBOLS), OPTIONS, None, read_lexicon(lexicon))
    assert search.lexicon_size() == 3
    assert search.decode(spelled_logprobs("the cat sat", SYMBOLS)) == "the feline sat"
