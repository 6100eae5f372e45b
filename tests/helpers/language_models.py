"""Small word language models for tests, written as ARPA text from sentences, and CTC
log-probabilities that spell a text (with chosen confusions) for a decoder to read.

The ARPA model is a bigram model with absolute discounting (0.5) and backoff to unigrams, in
log10 as ARPA has them: small, but a real model KenLM loads like any other.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

DISCOUNT = 0.5


def write_bigram_arpa(sentences: list[str], path: Path) -> Path:
    """An ARPA bigram model of the sentences' words (lower-cased), with <s>, </s> and <unk>."""
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for sentence in sentences:
        words = ["<s>", *sentence.lower().split(), "</s>"]
        unigrams.update(words[1:])
        bigrams.update(zip(words, words[1:]))
    total = sum(unigrams.values()) + 1  # one count left for <unk>
    vocabulary = sorted({"<s>", "<unk>", *unigrams})
    followers: Counter[str] = Counter(first for first, _ in bigrams)
    starts: Counter[str] = Counter()
    for (first, _), count in bigrams.items():
        starts[first] += count

    def unigram(word: str) -> float:
        count = unigrams.get(word, 0) if word != "<unk>" else 1
        return math.log10(count / total) if count else -99.0

    def backoff(word: str) -> float:
        if not starts[word]:
            return 0.0
        left = DISCOUNT * followers[word] / starts[word]  # mass the discount freed
        seen = sum(10 ** unigram(second) for first, second in bigrams if first == word)
        return math.log10(left / max(1.0 - seen, 1e-9))

    lines = ["\\data\\", f"ngram 1={len(vocabulary)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    for word in vocabulary:
        lines.append(f"{unigram(word):.6f}\t{word}\t{backoff(word):.6f}")
    lines += ["", "\\2-grams:"]
    for (first, second), count in sorted(bigrams.items()):
        lines.append(f"{math.log10((count - DISCOUNT) / starts[first]):.6f}\t{first} {second}")
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines))
    return path


def spelled_logprobs(
    text: str, symbols: list[str], confusions: dict[int, tuple[str, float]] | None = None
) -> np.ndarray:
    """[frames, classes] log-probabilities of a character model saying `text`: one frame per
    character, likeliest by far, then a blank frame. `confusions`: position -> (another
    character, how much likelier than the said one in log space) at that frame."""
    classes = len(symbols) + 1
    rows = []
    for position, character in enumerate(text):
        row = np.full(classes, -8.0)
        row[symbols.index(character)] = -0.1
        if confusions and position in confusions:
            other, margin = confusions[position]
            row[symbols.index(other)] = -0.1 + margin
        blank = np.full(classes, -8.0)
        blank[-1] = -0.05
        rows += [row, blank]
    logits = np.array(rows, dtype=np.float32)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
