"""Punctuation and capitalization: per word, the mark that follows it and its casing.

Words are the text's whitespace-separated words. Each takes the labels of its first sub-word
token from two heads: punctuation (`O` for none, else the mark to append, e.g. `,` `.` `?`) and
capitalization (`U` upper-cases the word's first letter, `O` keeps it). A word that already
ends with the predicted mark keeps a single one. Words are joined with single spaces.

Copied beside the python-backend models that use it; numpy only.
"""

from __future__ import annotations

import re

import numpy as np

NONE = "O"
UPPER = "U"


def punctuate(text: str, tokens: list, punct_labels: list[str], capit_labels: list[str]) -> str:
    """tokens: text_windows.Token in text order whose scores are punctuation logits followed
    by capitalization logits (len(punct_labels) + len(capit_labels) columns)."""
    first_token = {}
    for token in tokens:
        first_token.setdefault(token.start, token)
    starts = sorted(first_token)
    pieces = []
    for match in re.finditer(r"\S+", text):
        word = match.group()
        index = np.searchsorted(starts, match.start())
        token = None
        if index < len(starts) and starts[index] < match.end():
            token = first_token[starts[index]]
        if token is not None:
            punct = punct_labels[int(np.argmax(token.scores[: len(punct_labels)]))]
            capit = capit_labels[int(np.argmax(token.scores[len(punct_labels) :]))]
            if capit == UPPER:
                word = word[:1].upper() + word[1:]
            if punct != NONE and not word.endswith(punct):
                word += punct
        pieces.append(word)
    return " ".join(pieces)
