"""Normalized text -> sentences -> the symbol ids an acoustic model was trained with.

Two encodings, chosen by the symbol set's `encoding` (conf/tts_symbols/):
- `characters`: one id per character of the set (pad, special, punctuation, letters, in that
  order; NVIDIA's Tacotron 2 / FastPitch convention), unknown characters dropped; sentences as
  text_normalization.split_sentences cuts them.
- `piper_phonemes`: IPA phonemes as the Piper voice's own runtime makes them: piper-tts's
  espeak-ng, a library with its data, called in-process (no program, no Debian package, any
  UTF-8 whatever the locale). It splits the sentences and keeps clause punctuation; the
  phonemes go through the voice's phoneme_id_map: BOS '^', every phoneme followed by the pad
  '_', EOS '$'.
- `nemo_characters`: the ids NeMo's EnglishCharsTokenizer gives (a FastPitch .nemo's tokenizer,
  its token list read from the file): accents stripped, typographic quotes made plain,
  lowercased; letters, the apostrophe and the tokenizer's punctuation kept, runs of spaces made
  one, unknown characters dropped, spaces around the sentence when the tokenizer pads with them.
  A sentence with no letter or digit it knows has nothing to say (no ids) rather than NeMo's
  padding alone. Sentences as for `characters`.
- `nemo_ipa`: the ids NeMo's IPATokenizer gives with its IpaG2p (nemo_ipa.py), from the IPA
  dictionary and heteronyms the .nemo holds (copied beside model.py). Sentences as for
  `characters`.
A sentence is a string either way (its text, or its phonemes, one character each), so the
front-end cuts an overlong one the same way.
Plain functions, no imports from modelrepo_gen: copied beside the front-end's model.py.
"""

import unicodedata

try:  # beside model.py in a repository (the stub puts its folder on sys.path)
    from nemo_ipa import IpaG2p, ipa_ids
    from text_normalization import split_sentences
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.nemo_ipa import IpaG2p, ipa_ids
    from modelrepo_gen.components.triton_python.text_normalization import split_sentences

PAD, BOS, EOS = "_", "^", "$"
_PHONEMIZER = None  # piper-tts's espeak-ng, loaded once per process


def character_table(symbols: dict) -> dict[str, int]:
    """Character -> id: the pad first, then special, punctuation and letters."""
    ordered = [symbols["pad"], *symbols["special"], *symbols["punctuation"], *symbols["letters"]]
    return {symbol: index for index, symbol in enumerate(ordered)}


def character_ids(sentence: str, table: dict[str, int], lowercase: bool) -> list[int]:
    text = sentence.lower() if lowercase else sentence
    return [table[c] for c in text if c in table]


def phoneme_sentences(text: str, voice: str) -> list[str]:
    """The phonemes of each sentence of `text`, as Piper makes them:
    "Hello, world. Bye." -> ["həlˈoʊ, wˈɜːld.", "bˈaɪ."] (NFD: accents are their own symbols)."""
    global _PHONEMIZER
    if _PHONEMIZER is None:
        from piper.phonemize_espeak import EspeakPhonemizer

        _PHONEMIZER = EspeakPhonemizer()
    return ["".join(s) for s in _PHONEMIZER.phonemize(voice, text) if "".join(s).strip()]


def phoneme_ids(
    phonemes: str, id_map: dict[str, list[int]], clusters: list | None = None
) -> list[int]:
    """Piper's ids: BOS, pad, then each known phoneme followed by the pad, EOS. `clusters`: the
    voice's vowel_clusters, each merged into one phoneme (longest first), as Piper does."""
    symbols = list(unicodedata.normalize("NFD", phonemes))
    if clusters:
        symbols = merge_clusters(symbols, {tuple(c) for c in clusters})
    ids = [*id_map[BOS], *id_map[PAD]]
    for phoneme in symbols:
        if phoneme in id_map:
            ids += [*id_map[phoneme], *id_map[PAD]]
    return ids + id_map[EOS]


def merge_clusters(symbols: list[str], clusters: set[tuple[str, ...]]) -> list[str]:
    longest = max(len(c) for c in clusters)
    merged, i = [], 0
    while i < len(symbols):
        for n in range(min(longest, len(symbols) - i), 1, -1):
            if tuple(symbols[i : i + n]) in clusters:
                merged.append("".join(symbols[i : i + n]))
                i += n
                break
        else:
            merged.append(symbols[i])
            i += 1
    return merged


# NeMo's english_text_preprocessing: typographic quotes -> plain ones (its SYNOGLYPH2ASCII)
NEMO_SYNOGLYPHS = {"\u2019": "'", "\u201d": '"', "\u201c": '"'}


def nemo_character_ids(sentence: str, symbols: dict, table: dict[str, int]) -> list[int]:
    """NeMo's EnglishCharsTokenizer.encode of `sentence` (see the module's docstring)."""
    text = "".join(
        c for c in unicodedata.normalize("NFD", sentence) if unicodedata.category(c) != "Mn"
    )
    text = "".join(NEMO_SYNOGLYPHS.get(c, c) for c in text).lower()
    punctuation, kept = set(symbols["punctuation"]), []
    for c in text:
        if c == " ":
            if kept and kept[-1] != " ":
                kept.append(c)
        elif ((c.isalnum() or c == "'") and c in table) or c in punctuation:
            kept.append(c)
    while kept and kept[-1] == " ":
        kept.pop()
    if not any(c.isalnum() for c in kept):
        return []
    if symbols["pad_with_space"]:
        kept = [" ", *kept, " "]
    return [table[c] for c in kept]


class SymbolEncoder:
    """One symbol set's encoder: text -> sentences, sentence -> ids."""

    def __init__(
        self, symbols: dict, voice: dict | None = None, texts: dict[str, str] | None = None
    ):
        """`voice`: the Piper voice's .onnx.json (piper_phonemes only); `texts`: the IPA
        dictionary and heteronyms (nemo_ipa only: "dictionary", "heteronyms")."""
        self.encoding = symbols["encoding"]
        if self.encoding == "characters":
            self.table = character_table(symbols)
            self.lowercase = bool(symbols["lowercase"])
        elif self.encoding == "nemo_characters":
            self.symbols = symbols
            self.table = {token: index for index, token in enumerate(symbols["tokens"])}
        elif self.encoding == "nemo_ipa":
            texts = texts or {}
            self.symbols = symbols["tokenizer"]
            self.g2p = IpaG2p(texts["dictionary"], texts.get("heteronyms"), symbols["g2p"])
            self.table = {token: index for index, token in enumerate(symbols["tokens"])}
        elif self.encoding == "piper_phonemes":
            self.id_map = voice["phoneme_id_map"]
            self.clusters = voice.get("vowel_clusters")
            self.voice = symbols["espeak_voice"]
        else:
            raise ValueError(f"unknown encoding {self.encoding!r}")

    def sentences(self, text: str) -> list[str]:
        if self.encoding == "piper_phonemes":
            return phoneme_sentences(text, self.voice)
        return split_sentences(text)

    def encode(self, sentence: str) -> list[int]:
        if self.encoding == "characters":
            return character_ids(sentence, self.table, self.lowercase)
        if self.encoding == "nemo_characters":
            return nemo_character_ids(sentence, self.symbols, self.table)
        if self.encoding == "nemo_ipa":
            return ipa_ids(sentence, self.g2p, self.table, self.symbols)
        return phoneme_ids(sentence, self.id_map, self.clusters)
