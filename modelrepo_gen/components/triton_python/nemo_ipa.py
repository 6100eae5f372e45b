"""NeMo's IPA text tokenizer (IPATokenizer over IpaG2p, en-US) as a FastPitch .nemo uses it.

Reproduced from NeMo 3.0 token for token, as NeMo runs it at inference (phoneme probability 1):
the text's accents stripped and typographic quotes made plain (case kept); words (ASCII letters,
inner hyphens and apostrophes) looked up upper-cased in the file's CMUdict-layout IPA dictionary
(first pronunciation; an ambiguous word kept as letters when ignore_ambiguous_words), with
NeMo's 's / s suffix rules; heteronyms and unknown words spelled as letters (a hyphenated unknown
word looked up part by part); `|...|` spans kept as they are. The vocabulary is the dictionary's
symbols (its words' letters when use_chars), the apostrophe, the punctuation, sorted, then the
space, silence, pad, blank and out-of-vocabulary. Plain functions, no imports from
modelrepo_gen: copied beside the front-end's model.py.
"""

import re
import unicodedata

WORD_CHARS = (
    "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0900-\u0963\u0966-\u097f\u0980-\u09ff"
    "\u0b80-\u0bff\u0c00-\u0c7f\u0c80-\u0cff\u0a80-\u0aff\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
)
WORDS_EN = re.compile(r"([A-Za-z]+(?:[A-Za-z\-']*[A-Za-z]+)*)|(\|[^|]*\|)|([^A-Za-z|]+)")
CHAR = re.compile(rf"[{WORD_CHARS}\d]")
NOT_CHAR = re.compile(rf"[^{WORD_CHARS}\d]")
VARIANT = re.compile(r"\([0-9]+\)")
STRESS = ("\u02c8", "\u02cc")
DEFAULT_PUNCTUATION = (",", ".", "!", "?", "-", ":", ";", "/", '"', "(", ")", "[", "]", "{", "}")
SYNOGLYPHS = {"\u2019": "'", "\u201d": '"', "\u201c": '"'}
PAD, BLANK, OOV = "<pad>", "<blank>", "<oov>"


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _cased(text: str, case: str) -> str:
    return text.upper() if case == "upper" else text.lower() if case == "lower" else text


def _starts_entry(line: str) -> bool:
    first = line[0]
    return (
        "A" <= first <= "Z"
        or "a" <= first <= "z"
        or "\u00c0" <= first <= "\u00d6"
        or "\u00d8" <= first <= "\u00f6"
        or "\u00f8" <= first <= "\u00ff"
        or first == "'"
    )


class IpaG2p:
    """Words -> IPA symbols or letters, as NeMo's IpaG2p with phoneme probability 1."""

    def __init__(self, dictionary: str, heteronyms: str | None, settings: dict) -> None:
        """`dictionary`, `heteronyms`: the files' text; `settings`: the g2p section's."""
        self.case = settings.get("grapheme_case", "upper")
        self.prefix = settings.get("grapheme_prefix", "")
        self.ambiguous_kept = bool(settings.get("ignore_ambiguous_words", True))
        use_chars = bool(settings.get("use_chars", False))
        use_chars = use_chars or settings.get("phoneme_probability") is not None
        stresses = settings.get("use_stresses", True)
        self.words: dict[str, list[list[str]]] = {}
        self.symbols: set[str] = set()
        entries: dict[str, list[list[str]]] = {}
        for line in dictionary.splitlines(keepends=True):
            line = _nfc(line)
            if line and _starts_entry(line):
                parts = line.strip().split(maxsplit=1)
                word = VARIANT.sub("", parts[0])
                entries.setdefault(word, []).append(list(re.sub(r"\s+", "", parts[1])))
        for word, pronunciations in entries.items():
            cased = _cased(word, self.case)
            if use_chars:
                self.symbols.update(f"{self.prefix}{c}" for c in NOT_CHAR.sub("", cased))
            if not stresses:
                pronunciations = [[s for s in p if s not in STRESS] for p in pronunciations]
            for pronunciation in pronunciations:
                self.symbols.update(pronunciation)
            self.words[cased] = pronunciations
            if self.case == "mixed" and not cased.isupper():
                self.words[cased.upper()] = pronunciations
        lines = (heteronyms or "").splitlines()
        self.heteronyms = {_cased(h.rstrip(), self.case) for h in lines} if heteronyms else set()

    def _letters(self, word: str) -> list[str]:
        return [f"{self.prefix}{c}" for c in word]

    def _usable(self, word: str) -> bool:
        return not self.ambiguous_kept or len(self.words[word]) == 1

    def _found(self, word: str, cut: int) -> str | None:
        """The word without its last `cut` letters, if only that form is in the dictionary."""
        if word in self.words or word.upper() in self.words:
            return None
        for stem in (word[:-cut], word[:-cut].upper()):
            if stem in self.words:
                return stem if self._usable(stem) else None
        return None

    def word(self, word: str) -> tuple[list[str], bool]:
        """(symbols, handled) of one token of the text, as NeMo's parse_one_word."""
        word = _cased(word, self.case)
        if CHAR.search(word) is None:
            return list(word), True
        if word in self.heteronyms:
            return self._letters(word), True
        if len(word) > 2 and word[-2:] in ("'s", "'S") and (stem := self._found(word, 2)):
            ending = ["s"] if stem[-1] in "Tt" else ["ɪ", "z"] if stem[-1] in "Ss" else ["z"]
            return self.words[stem][0] + ending, True
        if len(word) > 1 and word[-1] in "sS" and (stem := self._found(word, 1)):
            return self.words[stem][0] + (["s"] if stem[-1] in "Tt" else ["z"]), True
        if word in self.words and self._usable(word):
            return self.words[word][0], True
        upper = word.upper()
        if self.case == "mixed" and word not in self.words and upper in self.words:
            if self._usable(upper):
                return self.words[upper][0], True
        return self._letters(word), False

    def __call__(self, text: str) -> list[str]:
        symbols: list[str] = []
        for word, unchanged, punctuation in WORDS_EN.findall(_nfc(text)):
            if unchanged and not word and not punctuation:
                symbols += [f"{self.prefix}{w}" for w in unchanged[1:-1].split(" ")]
                continue
            token = word.lower() if word else punctuation
            found, handled = self.word(token)
            if not handled and len(token.split("-")) > 1:
                found = []
                for part in token.split("-"):
                    found += self.word(part)[0] + ["-"]
                found.pop()
            symbols += found
        return symbols


def ipa_tokens(g2p: IpaG2p, settings: dict) -> list[str]:
    """The tokenizer's vocabulary in id order (IPATokenizer's, en-US)."""
    tokens = set(g2p.symbols)
    if settings.get("apostrophe", False):
        tokens.add("'")
    if settings.get("punct", True):
        tokens.update(settings.get("non_default_punct_list") or DEFAULT_PUNCTUATION)
    ordered = sorted(tokens)
    space = settings.get("space", " ")
    if space not in g2p.symbols:
        ordered.append(space)
    if settings.get("silence") is not None:
        ordered.append(settings["silence"])
    ordered.append(settings.get("pad", PAD))
    blank_at = settings.get("add_blank_at")
    if blank_at is not None:
        ordered.append(BLANK)
    ordered.append(settings.get("oov", OOV))
    if blank_at == "last":
        ordered[-1], ordered[-2] = ordered[-2], ordered[-1]
    return ordered


def ipa_ids(text: str, g2p: IpaG2p, table: dict[str, int], settings: dict) -> list[int]:
    """IPATokenizer.encode of `text`; no ids when nothing in it is a known letter or phoneme."""
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = "".join(SYNOGLYPHS.get(c, c) for c in text)
    space, kept = settings.get("space", " "), []
    punctuation = set(settings.get("non_default_punct_list") or DEFAULT_PUNCTUATION)
    for symbol in g2p(text):
        if symbol == space and kept and kept[-1] != space:
            kept.append(symbol)
        elif symbol in table:
            kept.append(symbol)
        elif symbol in punctuation and settings.get("punct", True):
            kept.append(symbol)
    while kept and kept[-1] == space:
        kept.pop()
    if not any(symbol.isalnum() for symbol in kept):
        return []
    if settings.get("pad_with_space", False):
        kept = [space, *kept, space]
    return [table[symbol] for symbol in kept]
