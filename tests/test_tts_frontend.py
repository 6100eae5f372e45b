"""The speech synthesis text front-end: English normalization with the shipped rules table,
sentence splitting, and both symbol encodings (characters; espeak-ng phonemes through the
installed Piper voice's phoneme_id_map, as piper-phonemize lays them out)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import CONF

from modelrepo_gen.components.piper_voice_source import voice_facts
from modelrepo_gen.components.triton_python.symbol_encoding import (
    SymbolEncoder,
    character_table,
    phoneme_ids,
    phonemize,
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
    decode_text,
    encode_text,
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
def piper_encoder() -> SymbolEncoder:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make speech)")
    symbols = {"encoding": "piper_phonemes", "espeak_command": "espeak-ng", "espeak_voice": "en-us"}
    return SymbolEncoder(symbols, voice_facts(None)["phoneme_id_map"])


def test_phonemes_keep_clause_punctuation(piper_encoder: SymbolEncoder) -> None:
    phonemes = phonemize("Hello, world. ", "espeak-ng", "en-us")
    assert phonemes == "həlˈoʊ, wˈɜːld."


def test_piper_ids_interleave_the_pad(piper_encoder: SymbolEncoder) -> None:
    id_map = piper_encoder.id_map
    ids = piper_encoder.encode("Hello, world.")
    pad = id_map["_"][0]
    assert ids[:2] == [id_map["^"][0], pad] and ids[-1] == id_map["$"][0]
    assert ids[1:-1:2] == [pad] * (len(ids) // 2)  # a pad after BOS and after every phoneme
    symbol_of = {i[0]: s for s, i in id_map.items()}
    assert "".join(symbol_of[v] for v in ids[2:-1:2]) == "həlˈoʊ, wˈɜːld."
    assert phoneme_ids("h?", id_map) == [1, 0, id_map["h"][0], 0, id_map["?"][0], 0, 2]


def test_encode_text_per_sentence(piper_encoder: SymbolEncoder) -> None:
    sentences = encode_text("One. Two!", RULES, piper_encoder)
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
        encode_text("... !? --", RULES, SymbolEncoder(CHARACTERS))
