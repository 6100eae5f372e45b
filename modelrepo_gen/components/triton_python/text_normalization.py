"""English text normalization for speech synthesis, driven by a rules table.

The rules (conf/text_normalization/*.yaml) hold every word: characters to replace,
abbreviations, currencies, symbols and number words. This file only applies them, in a fixed
order: characters, abbreviations, currency, ordinals, years, decimals, grouped and plain
numbers, symbols, whitespace. A number with more digits than the rules' largest scale can name
(a card or phone number, a run of digits) is read digit by digit. Then `split_sentences` cuts
the text after . ! ? and drops pieces with nothing to say. Plain functions, no imports from
modelrepo_gen: the file is copied beside the front-end's model.py and runs inside Triton's
python stub.
"""

import re

# Control characters have nothing to say (and espeak-ng stops at NUL).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SENTENCE_END = re.compile(r"([.!?][\"')\]]*)\s+")  # the end mark and closing quotes stay
SPEAKABLE = re.compile(r"[^\W_]")  # a letter or digit in any script
NUMBER = re.compile(r"(?<![\w.])(-?)(\d+)(?![\w])")
GROUPED = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+)(?![\d])")
DECIMAL = re.compile(r"(?<![\w.])(-?)(\d+)\.(\d+)(?![\w])")
ORDINAL = re.compile(r"(?<![\w.])(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
YEAR = re.compile(r"(?<![\w.,$\u00a3\u20ac-])(\d{4})(?![\w%]|\.\d|,\d)")


def cardinal(value: int, numbers: dict) -> str:
    """A non-negative integer in words: 1234 -> one thousand two hundred thirty-four."""
    ones, tens = numbers["ones"], numbers["tens"]
    if value < len(ones):
        return ones[value]
    if value < 100:
        word = tens[value // 10]
        return f"{word}-{ones[value % 10]}" if value % 10 else word
    for size, name in numbers["scales"]:
        if value >= size:
            head, rest = divmod(value, size)
            words = f"{cardinal(head, numbers)} {name}"
            return f"{words} {cardinal(rest, numbers)}" if rest else words
    raise ValueError(f"no scale word for {value}")


def named_digits(numbers: dict) -> int:
    """The most digits a number read as words may have: 15 when "trillion" is the largest scale
    (999 trillion ...)."""
    return len(str(numbers["scales"][0][0])) + 2


def number(text: str, numbers: dict) -> str:
    """Digits in words: as a number (1234 -> one thousand two hundred thirty-four), or one by
    one when there are more than the scales can name."""
    if len(text.lstrip("0")) > named_digits(numbers):
        return digits(text, numbers)
    return cardinal(int(text), numbers)


def ordinal(value: int, numbers: dict) -> str:
    """1 -> first, 22 -> twenty-second, 40 -> fortieth."""
    words = cardinal(value, numbers)
    head, sep, last = max(
        (words.rpartition(" "), words.rpartition("-")), key=lambda parts: len(parts[0])
    )
    irregular = numbers["ordinal_words"]
    if last in irregular:
        last = irregular[last]
    elif last.endswith("y"):
        last = last[:-1] + "ie" + numbers["ordinal_suffix"]
    else:
        last += numbers["ordinal_suffix"]
    return f"{head}{sep}{last}"


def year(value: int, numbers: dict) -> str:
    """1999 -> nineteen ninety-nine, 1905 -> nineteen oh five, 2005 -> two thousand five."""
    century, rest = divmod(value, 100)
    if century % 10 == 0 and rest < 10:  # 2000-2009: read as a number
        return cardinal(value, numbers)
    head = cardinal(century, numbers)
    if rest == 0:
        return f"{head} {numbers['scales'][-1][1]}"
    if rest < 10:
        return f"{head} {numbers['oh']} {cardinal(rest, numbers)}"
    return f"{head} {cardinal(rest, numbers)}"


def digits(text: str, numbers: dict) -> str:
    """Digits after a decimal point, one by one."""
    return " ".join(numbers["ones"][int(d)] for d in text)


def _signed(sign: str, words: str, numbers: dict) -> str:
    return f"{numbers['minus']} {words}" if sign else words


def _currency(text: str, rules: dict) -> str:
    numbers = rules["numbers"]
    signs = "".join(re.escape(sign) for sign in rules["currencies"])
    if not signs:
        return text
    pattern = re.compile(rf"([{signs}])(\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.(\d{{1,2}}))?(?!\d|\.\d)")

    def spell(match: re.Match) -> str:
        unit, units, sub, subs = rules["currencies"][match.group(1)]
        whole_digits = match.group(2).replace(",", "")
        whole = int(whole_digits[-18:])  # only compared with 0 and 1 (Python refuses huge ints)
        cents = int(match.group(3).ljust(2, "0")) if match.group(3) else 0
        parts = []
        if whole or not cents:
            parts.append(f"{number(whole_digits, numbers)} {unit if whole == 1 else units}")
        if cents:
            parts.append(f"{cardinal(cents, numbers)} {sub if cents == 1 else subs}")
        return f" {rules['currency_and']} ".join(parts)

    return pattern.sub(spell, text)


def _abbreviations(text: str, abbreviations: dict) -> str:
    # Longest first, so "Mrs." is not read as "Mr." + "s.".
    for written in sorted(abbreviations, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.]){re.escape(written)}", abbreviations[written], text)
    return text


def normalize(text: str, rules: dict) -> str:
    """Written English -> words a synthesizer can say; casing and punctuation are kept. Rules
    with `enabled: false` (conf/text_normalization/none.yaml) leave the text as written."""
    text = CONTROL.sub(" ", text)
    if not rules.get("enabled", True):
        return text
    numbers = rules["numbers"]
    for old, new in rules["characters"].items():
        text = text.replace(old, new)
    text = _abbreviations(text, rules["abbreviations"])
    text = _currency(text, rules)
    text = ORDINAL.sub(
        lambda m: (
            ordinal(int(m.group(1)), numbers)
            if len(m.group(1)) <= named_digits(numbers)
            else digits(m.group(1), numbers)
        ),
        text,
    )
    first, last = numbers["years"]
    text = YEAR.sub(
        lambda m: (
            year(int(m.group(1)), numbers)
            if first <= int(m.group(1)) <= last
            else cardinal(int(m.group(1)), numbers)
        ),
        text,
    )
    text = DECIMAL.sub(
        lambda m: _signed(
            m.group(1),
            f"{number(m.group(2), numbers)} {numbers['point']} {digits(m.group(3), numbers)}",
            numbers,
        ),
        text,
    )
    text = GROUPED.sub(lambda m: number(m.group(1).replace(",", ""), numbers), text)
    text = NUMBER.sub(lambda m: _signed(m.group(1), number(m.group(2), numbers), numbers), text)
    for symbol, word in rules["symbols"].items():
        text = text.replace(symbol, f" {word} ")
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)  # no space before punctuation
    return re.sub(r"\s+", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of normalized text, cut after . ! ? (and closing quotes); pieces without a
    letter or digit (punctuation only) are dropped."""
    pieces = SENTENCE_END.sub("\\1\n", text).split("\n")
    return [s.strip() for s in pieces if SPEAKABLE.search(s)]
