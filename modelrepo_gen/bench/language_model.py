"""Word language models written as ARPA text from sentences: the bench's (and the tests') model
for decoder=ctc_beam, where no English n-gram model installs offline in ARPA or KenLM form.

A bigram model with absolute discounting (0.5) and backoff to unigrams, in log10 as ARPA has
them. `words` adds a vocabulary beyond the sentences' (unigrams of one count each), so the
lexicon can be as large as a real recognizer's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

DISCOUNT = 0.5


def write_bigram_arpa(sentences: list[str], path: Path, words: Iterable[str] = ()) -> Path:
    """An ARPA bigram model of the sentences' words (lower-cased), with <s>, </s> and <unk>."""
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for sentence in sentences:
        said = ["<s>", *sentence.lower().split(), "</s>"]
        unigrams.update(said[1:])
        bigrams.update(zip(said, said[1:], strict=False))
    for word in words:
        unigrams[word] = unigrams[word] or 1
    total = sum(unigrams.values()) + 1  # one count left for <unk>
    starts: Counter[str] = Counter()
    followers: Counter[str] = Counter()
    seen_after: Counter[str] = Counter()  # the unigram mass of the words seen after each word
    for (first, second), count in bigrams.items():
        starts[first] += count
        followers[first] += 1
        seen_after[first] += unigrams[second] / total

    def unigram(word: str) -> float:
        return math.log10((unigrams[word] if word != "<unk>" else 1) / total)

    def backoff(word: str) -> float:
        if not starts[word]:
            return 0.0
        freed = DISCOUNT * followers[word] / starts[word]  # what the discount left to share
        return math.log10(freed / max(1.0 - seen_after[word], 1e-9))

    vocabulary = sorted({"<s>", "<unk>", *unigrams})
    lines = ["\\data\\", f"ngram 1={len(vocabulary)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    for word in vocabulary:
        probability = -99.0 if word == "<s>" else unigram(word)  # <s> is never predicted
        lines.append(f"{probability:.6f}\t{word}\t{backoff(word):.6f}")
    lines += ["", "\\2-grams:"]
    for (first, second), count in sorted(bigrams.items()):
        lines.append(f"{math.log10((count - DISCOUNT) / starts[first]):.6f}\t{first} {second}")
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines))
    return path
