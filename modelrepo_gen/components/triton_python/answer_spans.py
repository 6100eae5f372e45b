"""Extractive question answering: the best answer span over a context's windows.

Per window, start and end logits are turned into probabilities over the context tokens (and
the [CLS] token, which stands for "no answer"); a span's score is P(start) * P(end), its end
not before its start and at most `max_answer_length` tokens long. The best span over all
windows wins, unless answers may be absent and the no-answer score (the lowest over windows)
beats it. This is the search Hugging Face's question-answering pipeline does; as there, the
answer is widened to whole words (a span starting inside "Saramago" answers "Saramago").

Copied beside the python-backend model that uses it; numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_WORD = -1
MASKED = -10000.0  # logit given to tokens that cannot start or end an answer


@dataclass
class Answer:
    text: str
    start: int  # character offsets into the context; -1 when there is no answer
    end: int
    score: float


def _probabilities(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    masked = np.where(allowed, logits.astype(np.float64), MASKED)
    exp = np.exp(masked - masked.max())
    return exp / exp.sum()


def best_answer(
    context: str,
    offsets: np.ndarray,
    word_ids: np.ndarray,
    attention_mask: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    max_answer_length: int,
    allow_no_answer: bool,
) -> Answer:
    """Arrays are [windows, tokens] (offsets [windows, tokens, 2]) for one question."""
    best = Answer("", -1, -1, -1.0)
    null_score = 1.0
    for row in range(len(word_ids)):
        length = int(attention_mask[row].sum())
        in_context = word_ids[row, :length] != NO_WORD
        allowed = in_context.copy()
        if allow_no_answer:
            allowed[0] = True  # [CLS]
        p_start = _probabilities(start_logits[row, :length], allowed)
        p_end = _probabilities(end_logits[row, :length], allowed)
        null_score = min(null_score, float(p_start[0] * p_end[0]))
        scores = np.outer(p_start * in_context, p_end * in_context)
        scores = np.triu(scores) - np.triu(scores, k=max_answer_length)
        first, last = np.unravel_index(int(np.argmax(scores)), scores.shape)
        score = float(scores[first, last])
        if score > best.score and in_context[first]:
            words = word_ids[row, :length]
            start = int(offsets[row, :length, 0][words == words[first]].min())
            end = int(offsets[row, :length, 1][words == words[last]].max())
            best = Answer(context[start:end], start, end, score)
    if best.start < 0 or (allow_no_answer and null_score > best.score):
        return Answer("", -1, -1, null_score)
    return best
