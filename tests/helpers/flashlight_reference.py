"""flashlight-text called directly on one utterance's log-probabilities, as its documentation
shows (a lexicon decoder over a trie of the language model's words, KenLM scoring them): what
the served ctc_beam_decoder must answer on the same log-probabilities.

Character models: each word is spelled with its letters then the space (the word separator),
and one space frame ends the utterance. SentencePiece models: each word is its pieces, and the
blank is flashlight's silence.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from flashlight.lib.text.decoder import (
    CriterionType,
    LexiconDecoder,
    LexiconDecoderOptions,
    SmearingMode,
    Trie,
)
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary


def arpa_unigrams(path: Path) -> list[str]:
    text = path.read_text()
    section = text.split("\\1-grams:")[1].split("\\")[0]
    return [line.split()[1] for line in section.splitlines() if line.strip()]


def lexicon_search(
    logprobs: np.ndarray,
    lm_path: Path,
    symbols: list[str],
    spell,  # word -> token ids or None
    *,
    separator: int | None,
    beam_size: int = 32,
    beam_threshold: float = 20.0,
    lm_weight: float = 0.8,
    word_insertion_score: float = 1.0,
) -> str:
    blank = len(symbols)
    silence = blank if separator is None else separator
    spellings = {w: spell(w) for w in arpa_unigrams(lm_path)}
    spellings = {
        w: s + ([separator] if separator is not None else []) for w, s in spellings.items() if s
    }
    words = Dictionary()
    for word in spellings:
        words.add_entry(word)
    if not words.contains("<unk>"):
        words.add_entry("<unk>")
    unknown = words.get_index("<unk>")
    lm = KenLM(str(lm_path), words)
    trie = Trie(blank + 1, silence)
    start = lm.start(False)
    for word, spelling in spellings.items():
        trie.insert(spelling, words.get_index(word), lm.score(start, words.get_index(word))[1])
    trie.smear(SmearingMode.MAX)
    options = LexiconDecoderOptions(
        beam_size=beam_size,
        beam_size_token=blank + 1,
        beam_threshold=beam_threshold,
        lm_weight=lm_weight,
        word_score=word_insertion_score,
        unk_score=-math.inf,
        sil_score=0.0,
        log_add=False,
        criterion_type=CriterionType.CTC,
    )
    decoder = LexiconDecoder(options, trie, lm, silence, blank, unknown, [], False)
    emissions = np.asarray(logprobs, dtype=np.float32)
    if separator is not None:
        end = np.full((1, blank + 1), -math.inf, dtype=np.float32)
        end[0, separator] = 0.0
        emissions = np.concatenate([emissions, end])
    emissions = np.ascontiguousarray(emissions)
    results = decoder.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])
    return " ".join(words.get_entry(i) for i in results[0].words if i >= 0) if results else ""


def character_spelling(symbols: list[str]):
    index = {s: i for i, s in enumerate(symbols)}

    def spell(word: str) -> list[int] | None:
        ids = [index.get(c) for c in word]
        return None if not ids or None in ids or index.get(" ") in ids else ids

    return spell


def sentencepiece_spelling(processor):
    def spell(word: str) -> list[int] | None:
        ids = processor.encode(word, out_type=int)
        return None if not ids or processor.unk_id() in ids else ids

    return spell
