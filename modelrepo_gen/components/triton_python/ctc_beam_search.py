"""CTC beam search over one utterance's log-probabilities, by flashlight-text (the decoder Riva's
flashlight decoder is built on), with an optional KenLM word n-gram model and word boosting.

- No lexicon: flashlight's lexicon-free search over the tokens (plain beam search; one beam is
  greedy decoding). Its text is the tokens' text.
- A lexicon (words and their spellings in the tokens): flashlight's lexicon search, scoring each
  word with the language model (KenLM, or none) times `lm_weight`, plus `word_insertion_score`.
  Only lexicon words are emitted; its text is the words.
- Boosted words (per request, a score each): the language model's score of a boosted word is
  raised by its score; a boosted word the lexicon lacks is spelled and added for that request.

A character model's word separator is its space: each spelling ends with it, so a word's last
letter may repeat before the word ends (flashlight only repeats a token inside a word), and one
space frame is appended to the utterance so its last word ends too. A SentencePiece model marks
where a word starts inside its pieces; there the blank is flashlight's silence.

Imports flashlight only when a searcher is made: the package's helpers import this file too.
"""

import math
from collections import OrderedDict

import numpy as np

UNKNOWN_WORD = "<unk>"
CACHED_LEXICONS = 4  # lexicons of a request's boosted words, kept for the next requests


class Tokens:
    """The network's classes (the CTC blank last) and how words are written in them.

    `symbols`: each class's text, blank excluded. `spell(word)`: the word's token ids, or None
    where the tokens cannot write it. `text(ids)`: the text of a token sequence. `separator`: the
    class ending a word (a character model's space), None where pieces mark word starts."""

    def __init__(self, symbols: list, spell, text, separator=None) -> None:
        self.symbols = list(symbols)
        self.blank = len(self.symbols)
        self.spell = spell
        self.text = text
        self.separator = separator
        # flashlight's silence: a token that may repeat between words
        self.silence = self.blank if separator is None else separator


def character_tokens(symbols: list) -> Tokens:
    """Tokens of a character model whose word separator is its space class."""
    index = {symbol: i for i, symbol in enumerate(symbols)}
    space = index.get(" ")

    def spell(word):
        ids = [index.get(character) for character in word]
        if not ids or None in ids or space in ids:
            return None
        return ids + [space]

    return Tokens(symbols, spell, lambda ids: "".join(symbols[i] for i in ids), separator=space)


def sentencepiece_tokens(processor) -> Tokens:
    """Tokens of a SentencePiece model (its pieces mark where each word starts)."""
    symbols = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    unknown = processor.unk_id()

    def spell(word):
        ids = processor.encode(word, out_type=int)
        return ids if ids and unknown not in ids else None

    return Tokens(symbols, spell, lambda ids: processor.decode_ids(list(ids)))


def arpa_words(path) -> list:
    """The words of an ARPA language model: its unigrams, in file order."""
    words = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        inside = False
        for line in lines:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                fields = line.split()
                if len(fields) >= 2:
                    words.append(fields[1])
    return words


def is_arpa(path) -> bool:
    """Whether a language model file is ARPA text (else a KenLM binary), from its first lines."""
    with open(path, "rb") as head:
        start = head.read(4096)
    return b"\\data\\" in start


def read_lexicon(path) -> list:
    """(word, spelling tokens or None) per line of a lexicon file: `word [token ...]`; a word
    alone is spelled by the model's tokens. `|` (a word separator in wav2letter lexicons) is
    dropped: the separator is added by the search."""
    entries = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            fields = line.split()
            if fields:
                spelling = [token for token in fields[1:] if token != "|"]
                entries.append((fields[0], spelling or None))
    return entries


def spell_lexicon(entries: list, tokens: Tokens) -> dict:
    """word -> list of spellings (token ids), for the entries the tokens can write."""
    index = {symbol: i for i, symbol in enumerate(tokens.symbols)}
    spellings = {}
    for word, given in entries:
        if given is None:
            ids = tokens.spell(word)
        elif all(token in index for token in given):
            ids = [index[token] for token in given]
            if tokens.separator is not None:
                ids.append(tokens.separator)
        else:
            ids = None
        if ids:
            spellings.setdefault(word, [])
            if ids not in spellings[word]:
                spellings[word].append(ids)
    return spellings


def _boosted_lm(flashlight, base, unknown: int, known: int, lm_weight: float, boosts: dict):
    """The base model with `boosts[word index]` added to a word's score, so that its weighted
    score rises by exactly that much; words from index `known` on (a request's extra words) are
    scored as the unknown word."""

    class BoostedLM(flashlight.LM):
        def __init__(self) -> None:
            flashlight.LM.__init__(self)

        def start(self, start_with_nothing):
            return base.start(start_with_nothing)

        def score(self, state, index):
            scored_as = unknown if index >= known else index
            next_state, score = base.score(state, scored_as)
            return next_state, score + boosts.get(index, 0.0) / lm_weight

        def finish(self, state):
            return base.finish(state)

    return BoostedLM()


class CtcBeamSearch:
    """One model's search: its tokens, lexicon and language model, loaded once."""

    def __init__(
        self,
        tokens: Tokens,
        options: dict,
        lm_path=None,
        lexicon: list | None = None,
    ) -> None:
        """`options`: beam_size, beam_size_token, beam_threshold, lm_weight,
        word_insertion_score (flashlight's). `lexicon`: (word, spelling or None) entries, or
        None for the lexicon-free search; with an ARPA model and no lexicon, its words are."""
        from flashlight.lib.text import decoder as flashlight
        from flashlight.lib.text.dictionary import Dictionary

        self.flashlight = flashlight
        self.tokens = tokens
        self.options = options
        if lm_path is not None and lexicon is None:
            lexicon = [(word, None) for word in arpa_words(lm_path)]
        self.spellings = spell_lexicon(lexicon, tokens) if lexicon is not None else None
        self.words = Dictionary()
        if self.spellings is not None:
            for word in self.spellings:
                self.words.add_entry(word)
        if not self.words.contains(UNKNOWN_WORD):
            self.words.add_entry(UNKNOWN_WORD)
        self.unknown = self.words.get_index(UNKNOWN_WORD)
        self.words.set_default_index(self.unknown)
        self.known = self.words.index_size()
        if lm_path is not None:
            from flashlight.lib.text.decoder.kenlm import KenLM

            self.lm = KenLM(str(lm_path), self.words)
        else:
            self.lm = flashlight.ZeroLM()
        start = self.lm.start(False)
        self.unigrams = {  # each word's score at the start, the trie's lookahead
            index: self.lm.score(start, index)[1] for index in range(self.known)
        }
        self.trie = self._trie({}, {}) if self.spellings is not None else None
        self.boosted_lexicons = OrderedDict()

    @property
    def has_lexicon(self) -> bool:
        return self.spellings is not None

    def lexicon_size(self) -> int:
        return len(self.spellings or {})

    def _trie(self, lookahead: dict, extra: dict):
        """The lexicon's trie: every spelling with its word's unigram score, which the search
        looks ahead with (`lookahead`: word index -> a boosted word's score instead), and
        `extra` {word index: spellings} (a request's boosted words outside the lexicon)."""
        flashlight = self.flashlight
        trie = flashlight.Trie(len(self.tokens.symbols) + 1, self.tokens.silence)
        entries = [(self.words.get_index(word), s) for word, s in self.spellings.items()]
        for index, spellings in entries + sorted(extra.items()):
            score = lookahead.get(index, self.unigrams.get(index, self.unigrams[self.unknown]))
            for spelling in spellings:
                trie.insert(spelling, index, score)
        trie.smear(flashlight.SmearingMode.MAX)
        return trie

    def _with_boosts(self, boosts: dict):
        """(trie, lm, word names beyond the dictionary) for a request's boosted words. The
        trie looks ahead with the boosted scores too, or a boosted word would be pruned before
        it ends; tries are kept for the next requests boosting the same."""
        extra_words = sorted(w for w in boosts if w not in self.spellings)
        indices = {word: self.words.get_index(word) for word in boosts if word in self.spellings}
        extra = {}
        for offset, word in enumerate(extra_words):
            indices[word] = self.known + offset
            extra[self.known + offset] = [self.tokens.spell(word)]
        weight = self.options["lm_weight"] or 1.0
        by_index = {indices[word]: score for word, score in boosts.items()}
        lm = _boosted_lm(self.flashlight, self.lm, self.unknown, self.known, weight, by_index)
        key = tuple(sorted(boosts.items()))
        if key not in self.boosted_lexicons:
            lookahead = {
                index: self.unigrams.get(index, self.unigrams[self.unknown]) + score / weight
                for index, score in by_index.items()
            }
            self.boosted_lexicons[key] = self._trie(lookahead, extra)
            while len(self.boosted_lexicons) > CACHED_LEXICONS:
                self.boosted_lexicons.popitem(last=False)
        self.boosted_lexicons.move_to_end(key)
        names = {i: w for w, i in indices.items() if i >= self.known}
        return self.boosted_lexicons[key], lm, names

    def unspellable(self, words) -> list:
        """The words (of a request's boosted words) the tokens cannot write."""
        return [word for word in words if self.tokens.spell(word) is None]

    def decode(self, logprobs: np.ndarray, boosts: dict | None = None) -> str:
        """logprobs [frames, classes] (one utterance, its valid frames) -> text. `boosts`:
        word -> score, for a searcher with a lexicon."""
        flashlight = self.flashlight
        emissions = np.ascontiguousarray(logprobs, dtype=np.float32)
        if self.tokens.separator is not None and self.has_lexicon:
            ending = np.full((1, emissions.shape[1]), -math.inf, dtype=np.float32)
            ending[0, self.tokens.separator] = 0.0  # a space, so the last word ends
            emissions = np.concatenate([emissions, ending])
        frames, classes = emissions.shape
        if frames == 0:
            return ""
        weight = self.options["lm_weight"]
        if self.has_lexicon:
            trie, lm, extra_names = self.trie, self.lm, {}
            if boosts:
                trie, lm, extra_names = self._with_boosts(boosts)
                weight = weight or 1.0
            search = flashlight.LexiconDecoder(
                flashlight.LexiconDecoderOptions(
                    beam_size=self.options["beam_size"],
                    beam_size_token=self.options["beam_size_token"],
                    beam_threshold=self.options["beam_threshold"],
                    lm_weight=weight,
                    word_score=self.options["word_insertion_score"],
                    unk_score=-math.inf,
                    sil_score=0.0,
                    log_add=False,
                    criterion_type=flashlight.CriterionType.CTC,
                ),
                trie,
                lm,
                self.tokens.silence,
                self.tokens.blank,
                self.unknown,
                [],
                False,
            )
        else:
            search = flashlight.LexiconFreeDecoder(
                flashlight.LexiconFreeDecoderOptions(
                    beam_size=self.options["beam_size"],
                    beam_size_token=self.options["beam_size_token"],
                    beam_threshold=self.options["beam_threshold"],
                    lm_weight=0.0,
                    sil_score=0.0,
                    log_add=False,
                    criterion_type=flashlight.CriterionType.CTC,
                ),
                self.lm,
                self.tokens.silence,
                self.tokens.blank,
                [],
            )
        results = search.decode(emissions.ctypes.data, frames, classes)
        if not results:
            return ""
        best = results[0]
        if self.has_lexicon:
            names = [extra_names.get(i) or self.words.get_entry(i) for i in best.words if i >= 0]
            return " ".join(names)
        # the path has one token per frame between a start and an end position (silence)
        return self.tokens.text(collapse(list(best.tokens)[1:-1], self.tokens.blank))


def collapse(ids, blank: int) -> list:
    """A frame-by-frame token path -> its tokens: repeats merged, blanks and padding dropped."""
    collapsed = []
    previous = None
    for index in ids:
        if index != previous and index != blank and index >= 0:
            collapsed.append(index)
        previous = index
    return collapsed
