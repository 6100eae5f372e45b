"""The speech synthesis text front-end: English normalization with the shipped rules table,
sentence splitting, and both symbol encodings (characters; the installed Piper voice's
phonemes as its own runtime, piper-tts, makes them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from helpers.project import CONF

from modelrepo_gen.components.piper_voice_source import voice_file, voice_json
from modelrepo_gen.components.triton_python.symbol_encoding import (
    SymbolEncoder,
    character_table,
    phoneme_ids,
    phoneme_sentences,
)
from modelrepo_gen.components.triton_python.text_normalization import (
    cardinal,
    normalize,
    ordinal,
    split_sentences,
    year,
)
from modelrepo_gen.components.triton_python.tts_text_frontend import (
    BadText,
    cut_near_middle,
    decode_text,
    encode_text,
    fitted,
    pack,
)

RULES = yaml.safe_load((CONF / "text_normalization" / "english.yaml").read_text())
CHARACTERS = yaml.safe_load((CONF / "tts_symbols" / "english_characters.yaml").read_text())
NUMBERS = RULES["numbers"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (95, "ninety-five"),
        (100, "one hundred"),
        (1234, "one thousand two hundred thirty-four"),
        (2_000_017, "two million seventeen"),
    ],
)
def test_cardinals(value: int, words: str) -> None:
    assert cardinal(value, NUMBERS) == words


@pytest.mark.parametrize(
    ("value", "words"),
    [(1, "first"), (2, "second"), (12, "twelfth"), (22, "twenty-second"), (40, "fortieth"),
     (103, "one hundred third")],
)  # fmt: skip
def test_ordinals(value: int, words: str) -> None:
    assert ordinal(value, NUMBERS) == words


@pytest.mark.parametrize(
    ("value", "words"),
    [(1999, "nineteen ninety-nine"), (1905, "nineteen oh five"), (2005, "two thousand five"),
     (1900, "nineteen hundred"), (2024, "twenty twenty-four")],
)  # fmt: skip
def test_years(value: int, words: str) -> None:
    assert year(value, NUMBERS) == words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Dr. Smith met Mrs. Jones.", "Doctor Smith met Missus Jones."),
        ("It costs $3.50.", "It costs three dollars and fifty cents."),
        ("Only $1 and £0.05 and €12.", "Only one dollar and five pence and twelve euros."),
        ("Born in 1999, on the 21st.", "Born in nineteen ninety-nine, on the twenty-first."),
        ("Pi is 3.14, not -2.", "Pi is three point one four, not minus two."),
        ("We sold 1,234,567 copies.", "We sold one million two hundred thirty-four thousand "
         "five hundred sixty-seven copies."),
        ("Up 50% & rising", "Up fifty percent and rising"),
        ("\u201cYes\u201d \u2013 she said\u2026", '"Yes" - she said.'),
        ("Room 12 and 4500 seats", "Room twelve and four thousand five hundred seats"),
    ],
)  # fmt: skip
def test_normalize(text: str, spoken: str) -> None:
    assert normalize(text, RULES) == spoken


def test_normalize_keeps_casing_and_punctuation() -> None:
    assert normalize("  Hello,   WORLD!  Why? ", RULES) == "Hello, WORLD! Why?"


def test_rules_come_from_the_table() -> None:
    rules = {**RULES, "abbreviations": {**RULES["abbreviations"], "Dept.": "Department"}}
    assert normalize("The Dept. of Energy.", rules) == "The Department of Energy."
    assert normalize("The Dept. of Energy.", RULES) == "The Dept. of Energy."


def test_split_sentences() -> None:
    text = normalize('He said "Go!" Then he left. Did he? Yes... !!! ok', RULES)
    assert split_sentences(text) == ['He said "Go!"', "Then he left.", "Did he?", "Yes...!!!", "ok"]
    assert split_sentences("... ?! --") == []


def test_character_ids_follow_the_symbol_set() -> None:
    table = character_table(CHARACTERS)
    assert table["_"] == 0 and table["-"] == 1 and table["!"] == 2
    assert table["A"] == 1 + len(CHARACTERS["punctuation"]) + 1
    encoder = SymbolEncoder(CHARACTERS)
    # Lowercased; "#" is not in the set and is dropped.
    assert encoder.encode("Hi, #b.") == [table[c] for c in "hi, b."]


@pytest.fixture(scope="module")
def piper_voice() -> dict:
    return json.loads(voice_json(voice_file(None)).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def piper_encoder(piper_voice: dict) -> SymbolEncoder:
    symbols = {"encoding": "piper_phonemes", "espeak_voice": piper_voice["espeak"]["voice"]}
    return SymbolEncoder(symbols, piper_voice)


def test_phonemes_keep_clause_punctuation_and_piper_splits_the_sentences() -> None:
    assert phoneme_sentences("Hello, world. Bye!", "en-us") == ["həlˈoʊ, wˈɜːld.", "bˈaɪ!"]
    assert phoneme_sentences(" \n ", "en-us") == []


def test_piper_ids_interleave_the_pad(piper_encoder: SymbolEncoder) -> None:
    id_map = piper_encoder.id_map
    ids = piper_encoder.encode("həlˈoʊ, wˈɜːld.")
    pad = id_map["_"][0]
    assert ids[:2] == [id_map["^"][0], pad] and ids[-1] == id_map["$"][0]
    assert ids[1:-1:2] == [pad] * (len(ids) // 2)  # a pad after BOS and after every phoneme
    symbol_of = {i[0]: s for s, i in id_map.items()}
    assert "".join(symbol_of[v] for v in ids[2:-1:2]) == "həlˈoʊ, wˈɜːld."
    assert phoneme_ids("h?", id_map) == [1, 0, id_map["h"][0], 0, id_map["?"][0], 0, 2]
    # A voice's vowel clusters become one phoneme, as Piper merges them.
    clustered = {**id_map, "aɪ": [999]}
    assert phoneme_ids("baɪ", clustered, [["a", "ɪ"]])[4:6] == [999, 0]


# Everyday sentences, accents and the sentence breaks where Debian's espeak-ng and Piper's differ.
PIPER_TEXTS = [
    "The ship came to shore at the age of steam.",
    "Wow... really?! That's incredible.",
    "Zoë's café serves crème brûlée; naïve façades, déjà vu.",
    "She sells sea shells by the sea shore, doesn't she?",
    "Hello, world! How are you today? I'm fine: thanks.",
]


def test_piper_ids_are_the_voices_own_runtimes(piper_encoder: SymbolEncoder) -> None:
    """Without the project's normalization (nothing here for it to change either), every
    sentence's ids equal piper-tts's: its phonemizer, its sentence split, its id layout."""
    from piper.voice import PiperVoice

    voice = PiperVoice.load(voice_file(None))
    for text in PIPER_TEXTS:
        expected = [voice.phonemes_to_ids(p) for p in voice.phonemize(text)]
        ours = [piper_encoder.encode(s) for s in piper_encoder.sentences(text)]
        assert ours == expected, text
        assert encode_text(text, RULES, piper_encoder, 600, 15000) == expected, text


def test_a_script_the_voice_cannot_speak_is_read_as_piper_reads_it(
    piper_encoder: SymbolEncoder,
) -> None:
    """The documented fallback: an English voice reads Chinese, Arabic or emoji as espeak-ng
    names them ("Chinese letter", "grinning face"), the voice's own runtime's ids, no error."""
    from piper.voice import PiperVoice

    voice = PiperVoice.load(voice_file(None))
    for text in [
        "\u4f60\u597d\uff0c\u4e16\u754c\u3002",
        "\u0645\u0631\u062d\u0628\u0627",
        "\U0001f600 ok",
    ]:
        expected = [voice.phonemes_to_ids(p) for p in voice.phonemize(text)]
        assert encode_text(text, RULES, piper_encoder, 600, 15000) == expected, text
    assert "t\u0283\u02c8a\u026ani\u02d0z" in piper_encoder.sentences("\u4f60")[0]  # "Chinese"


def test_with_normalization_off_every_text_gets_piper_tts_ids(
    piper_encoder: SymbolEncoder,
) -> None:
    """text_normalization=none: numbers, currency and abbreviations too are piper-tts's."""
    from piper.voice import PiperVoice

    rules = yaml.safe_load((CONF / "text_normalization" / "none.yaml").read_text())
    voice = PiperVoice.load(voice_file(None))
    for text in [
        *PIPER_TEXTS,
        "Dr. Smith paid $3.50 on May 1st, 1999! Call 555-0199.",
        "3 + 4 = 7",
    ]:
        expected = [voice.phonemes_to_ids(p) for p in voice.phonemize(text)]
        assert encode_text(text, rules, piper_encoder, 600, 15000) == expected, text
    assert normalize("Dr. Who\x00 at 10:30", rules) == "Dr. Who  at 10:30"


@pytest.mark.parametrize("lang", ["C", None])
def test_any_utf8_text_is_spoken_whatever_the_locale(lang: str | None, tmp_path) -> None:
    """In a fresh process with LANG=C or no LANG at all (a server started so)."""
    script = (
        "import json, sys\n"
        "from modelrepo_gen.components.triton_python.symbol_encoding import phoneme_sentences\n"
        "print(json.dumps(phoneme_sentences(sys.argv[1], 'en-us')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k != "LANG"}
    if lang:
        env["LANG"] = lang
    text = "Zoë's café serves crème brûlée."
    done = subprocess.run(
        [sys.executable, "-c", script, text], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(done.stdout) == phoneme_sentences(text, "en-us")
    assert "ɛ" in json.loads(done.stdout)[0]


def test_encode_text_per_sentence(piper_encoder: SymbolEncoder) -> None:
    sentences = encode_text("One. Two!", RULES, piper_encoder, 600, 15000)
    assert len(sentences) == 2
    ids, lengths = pack([sentences, [[5, 6]]])
    assert lengths.tolist() == [[len(sentences[0]), len(sentences[1])], [2, 0]]
    assert ids[0, : lengths[0].sum()].tolist() == sentences[0] + sentences[1]
    assert ids[1].tolist()[:2] == [5, 6] and not ids[1, 2:].any()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "TEXT is empty"),
        (b" \n\t", "TEXT is empty"),
        (b"\xff\xfeabc", "TEXT is not valid UTF-8 (byte 0)"),
        (b"x" * 11, "TEXT is 11 characters long, more than the maximum of 10"),
    ],
)
def test_bad_text(raw: bytes, message: str) -> None:
    with pytest.raises(BadText, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_text(raw, max_characters=10)


def test_nothing_to_speak() -> None:
    with pytest.raises(BadText, match="nothing to speak"):
        encode_text("... !? --", RULES, SymbolEncoder(CHARACTERS), 300, 7500)


def test_digit_runs_longer_than_the_scales_name_are_read_digit_by_digit() -> None:
    largest = "9" * 15  # 999 trillion ...: the largest number "trillion" can name
    assert normalize(largest, RULES).startswith("nine hundred ninety-nine trillion")
    assert normalize("1" + "0" * 15, RULES) == "one " + " ".join(["zero"] * 15)
    assert normalize("card 4111111111111111.", RULES) == "card four " + "one " * 14 + "one."
    # Python refuses int() of more than 4300 digits: a text of digits still normalizes.
    assert normalize("7" * 5000, RULES) == " ".join(["seven"] * 5000)
    assert normalize("$" + "1" * 20, RULES) == " ".join(["one"] * 20) + " dollars"
    assert normalize("12345678901234567890th", RULES).startswith("one two three")
    assert normalize("1" * 20 + ".5", RULES) == " ".join(["one"] * 20) + " point five"


def test_a_long_sentence_is_cut_at_a_clause_break_then_a_space_near_its_middle() -> None:
    clause = "first part of it, and the second part of it"
    assert cut_near_middle(clause) == ("first part of it,", "and the second part of it")
    # A comma far from the middle is not used: the space nearest the middle is.
    lopsided = "yes, " + "word " * 20 + "end"
    head, tail = cut_near_middle(lopsided)
    assert abs(len(head) - len(tail)) <= 6 and not head.endswith(",")
    assert cut_near_middle("x" * 9) == ("xxxx", "xxxxx")  # one long word: its middle


@pytest.mark.parametrize("limit", [8, 20, 57, 300])
def test_every_piece_of_a_fitted_sentence_fits_and_keeps_every_word(limit: int) -> None:
    encoder = SymbolEncoder(CHARACTERS)
    sentence = normalize("Count " + "1" * 400 + ", then stop; " + "w" * 90 + " at the end.", RULES)
    pieces = fitted(sentence, encoder.encode, limit)
    assert pieces and all(1 <= len(p) <= limit for p in pieces)
    space = encoder.encode(" ")
    # Rejoined with the spaces they were cut at, the pieces say the whole sentence.
    joined = [i for p in pieces for i in [*p, *space]]
    without_spaces = [i for i in joined if i not in space]
    assert without_spaces == [i for i in encoder.encode(sentence) if i not in space]
    if limit >= len(encoder.encode(sentence)):
        assert pieces == [encoder.encode(sentence)]


def test_the_probe_text_of_4000_digits_is_refused_by_the_total_limit_not_spoken_whole() -> None:
    encoder = SymbolEncoder(CHARACTERS)
    with pytest.raises(BadText, match="more than 7500 symbols to speak"):
        encode_text("1" * 4000, RULES, encoder, 300, 7500)
    # Within the total, a run of digits becomes sentences of at most 300 symbols.
    sentences = encode_text("1" * 1000, RULES, encoder, 300, 7500)
    assert len(sentences) > 10 and max(len(s) for s in sentences) <= 300


def test_a_long_piper_sentence_fits_the_voice(piper_encoder: SymbolEncoder) -> None:
    text = "The list goes on " + "and on " * 60 + "until it ends."
    sentences = encode_text(text, RULES, piper_encoder, 120, 15000)
    assert len(sentences) > 2 and max(len(s) for s in sentences) <= 120
    bos, eos = piper_encoder.id_map["^"][0], piper_encoder.id_map["$"][0]
    assert all(s[0] == bos and s[-1] == eos for s in sentences)  # each piece a whole utterance
