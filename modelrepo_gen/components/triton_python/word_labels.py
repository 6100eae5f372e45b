"""Token scores -> labelled words and entities (named entities, slots).

A word takes the label of its first sub-word token (the token a tagger is trained on) with that
token's probability as its score. Entities are runs of words in BIO / IOB2 tags: `B-X` opens an
entity of type X, `I-X` continues an open X (and opens one after anything else), `O` closes;
tags without a prefix are types of their own. An entity's score is the mean of its words'.

Copied beside the python-backend models that use it; numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Word:
    start: int
    end: int
    label: str
    score: float


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def label_words(tokens: list, labels: list[str]) -> list[Word]:
    """Tokens (text_windows.Token with logits as scores, in text order) -> one Word per word."""
    words: list[Word] = []
    current = None
    for token in tokens:
        if token.word != current:
            probabilities = softmax(token.scores)
            best = int(np.argmax(probabilities))
            words.append(Word(token.start, token.end, labels[best], float(probabilities[best])))
            current = token.word
        else:
            words[-1].end = token.end
    return words


def _split_tag(label: str) -> tuple[str, str]:
    if len(label) > 2 and label[1] == "-" and label[0] in "BI":
        return label[0], label[2:]
    return "", label


def group_entities(text: str, words: list[Word], outside: str = "O") -> list[dict]:
    """Labelled words -> entities: [{label, text, start, end, score}] in text order."""
    entities: list[dict] = []
    scores: list[float] = []
    open_type = None
    for word in words:
        prefix, kind = _split_tag(word.label)
        if word.label == outside:
            open_type = None
            continue
        if prefix == "I" and kind == open_type:
            entities[-1]["end"] = word.end
            scores.append(word.score)
        else:
            if entities and scores:
                entities[-1]["score"] = float(np.mean(scores))
            entities.append({"label": kind, "start": word.start, "end": word.end})
            scores = [word.score]
            open_type = kind
    if entities:
        entities[-1]["score"] = float(np.mean(scores))
    for entity in entities:
        entity["text"] = text[entity["start"] : entity["end"]]
    return [{k: e[k] for k in ("label", "text", "start", "end", "score")} for e in entities]
