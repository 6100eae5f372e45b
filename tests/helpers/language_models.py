"""Small word language models for tests (ARPA text from sentences, written as the bench writes
them), and CTC log-probabilities that spell a text with chosen confusions, for a decoder."""

from __future__ import annotations

import numpy as np

from modelrepo_gen.bench.language_model import write_bigram_arpa

__all__ = ["spelled_logprobs", "write_bigram_arpa"]


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
