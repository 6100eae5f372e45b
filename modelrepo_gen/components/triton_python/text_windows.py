"""Text -> overlapping token windows for a BERT-family model, with the Hugging Face `tokenizers`
library and the model's own tokenizer.json (its WordPiece vocabulary and lower-casing).

A text longer than one window is cut into windows of at most `max_seq_length` tokens (special
tokens included) that overlap by `doc_stride` tokens; for question answering every window
repeats the question and cuts only the context. Each token keeps its character span in the
text and the index of its word, so post-processing can point back into the original text.

Copied beside the python-backend models that use it; numpy and tokenizers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_WORD = -1  # special tokens, question tokens and padding belong to no word of the text


@dataclass
class Windows:
    """One text's windows, padded to the longest window: arrays [windows, tokens]."""

    input_ids: np.ndarray  # int64
    attention_mask: np.ndarray  # int64, 0 on padding
    token_type_ids: np.ndarray  # int64
    offsets: np.ndarray  # int32 [windows, tokens, 2]: character span in the text, -1 if none
    word_ids: np.ndarray  # int32: word index in the text, NO_WORD if none

    @property
    def count(self) -> int:
        return len(self.input_ids)


class TextTooLong(ValueError):
    """The text needs more windows than allowed (the message follows the text's name)."""


class QuestionTooLong(ValueError):
    """The question fills a whole window (the message follows the question's name)."""


def load_tokenizer(path: str, max_seq_length: int, doc_stride: int):
    """The tokenizer of tokenizer.json, cutting windows of `max_seq_length` with `doc_stride`
    tokens of overlap and no padding (padding is per batch, to its longest window)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_seq_length, stride=doc_stride, strategy="only_second")
    return tokenizer


def tokenize_windows(
    tokenizer, text: str, question: str | None = None, max_windows: int = 1
) -> Windows:
    """The windows of `text` (the context when `question` is given). With max_windows=1 a
    longer text keeps its first window only (classification reads one window); above 1, a
    text needing more windows raises TextTooLong."""
    if question is None:
        tokenizer.enable_truncation(
            tokenizer.truncation["max_length"],
            stride=tokenizer.truncation["stride"],
            strategy="longest_first",
        )
        encoding = tokenizer.encode(text)
        text_sequence = 0
    else:
        max_length, stride = tokenizer.truncation["max_length"], tokenizer.truncation["stride"]
        try:  # counted whole: truncation would cut (or, cutting only the context, refuse) it
            tokenizer.no_truncation()
            question_tokens = len(tokenizer.encode(question, add_special_tokens=False).ids)
        finally:
            tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")
        # Every window repeats the question; the context left must exceed the overlap of
        # consecutive windows, or no window could move on (the tokenizer panics).
        context = max_length - tokenizer.num_special_tokens_to_add(True) - question_tokens
        if context <= stride:
            raise QuestionTooLong(
                f"is {question_tokens} tokens long: with the special tokens it leaves "
                f"{max(context, 0)} tokens for the context in a window of {max_length} "
                f"tokens, which must be more than the {stride} tokens consecutive windows "
                "share (doc_stride); ask a shorter question"
            )
        encoding = tokenizer.encode(question, text)
        text_sequence = 1
    encodings = [encoding, *encoding.overflowing]
    if max_windows == 1:
        encodings = encodings[:1]
    elif len(encodings) > max_windows:
        raise TextTooLong(
            f"needs {len(encodings)} windows of {tokenizer.truncation['max_length']} tokens, "
            f"more than the maximum of {max_windows}"
        )
    width = max(len(e.ids) for e in encodings)
    shape = (len(encodings), width)
    windows = Windows(
        input_ids=np.zeros(shape, dtype=np.int64),
        attention_mask=np.zeros(shape, dtype=np.int64),
        token_type_ids=np.zeros(shape, dtype=np.int64),
        offsets=np.full((*shape, 2), -1, dtype=np.int32),
        word_ids=np.full(shape, NO_WORD, dtype=np.int32),
    )
    for row, e in enumerate(encodings):
        n = len(e.ids)
        windows.input_ids[row, :n] = e.ids
        windows.attention_mask[row, :n] = e.attention_mask
        windows.token_type_ids[row, :n] = e.type_ids
        for position, (word, sequence, span) in enumerate(
            zip(e.word_ids, e.sequence_ids, e.offsets)
        ):
            if word is not None and sequence == text_sequence:
                windows.word_ids[row, position] = word
                windows.offsets[row, position] = span
    return windows


def stack_windows(items: list[Windows]) -> tuple[Windows, np.ndarray]:
    """Several texts' windows as one padded block [texts, windows, tokens] (as Windows whose
    arrays have a leading text axis) and each text's window count."""
    rows = max(w.count for w in items)
    width = max(w.input_ids.shape[1] for w in items)

    def block(name: str, fill: int) -> np.ndarray:
        first = getattr(items[0], name)
        out = np.full((len(items), rows, width, *first.shape[2:]), fill, dtype=first.dtype)
        for i, w in enumerate(items):
            array = getattr(w, name)
            out[i, : array.shape[0], : array.shape[1]] = array
        return out

    stacked = Windows(
        input_ids=block("input_ids", 0),
        attention_mask=block("attention_mask", 0),
        token_type_ids=block("token_type_ids", 0),
        offsets=block("offsets", -1),
        word_ids=block("word_ids", NO_WORD),
    )
    counts = np.array([[w.count] for w in items], dtype=np.int32)
    return stacked, counts


def unstack_windows(stacked: Windows, count: int, index: int) -> Windows:
    """Text `index` of a stacked block: its `count` windows, trimmed to its longest."""
    mask = stacked.attention_mask[index, :count]
    width = int(mask.sum(axis=1).max()) if count else 0
    return Windows(
        input_ids=stacked.input_ids[index, :count, :width],
        attention_mask=mask[:, :width],
        token_type_ids=stacked.token_type_ids[index, :count, :width],
        offsets=stacked.offsets[index, :count, :width],
        word_ids=stacked.word_ids[index, :count, :width],
    )


@dataclass
class Token:
    """A token of the text: its character span, word index and its row of scores."""

    start: int
    end: int
    word: int
    scores: np.ndarray


def merge_windows(windows: Windows, scores: np.ndarray) -> list[Token]:
    """Every token of the text once, in order, with its scores [windows, tokens, classes] from
    the window where it lies furthest from an edge (where the model saw most context)."""
    best: dict[int, tuple[int, Token]] = {}
    for row in range(windows.count):
        positions = np.flatnonzero(windows.word_ids[row] != NO_WORD)
        if positions.size == 0:
            continue
        first, last = int(positions[0]), int(positions[-1])
        for position in positions.tolist():
            start, end = windows.offsets[row, position].tolist()
            centrality = min(position - first, last - position)
            if start not in best or centrality > best[start][0]:
                token = Token(
                    start, end, int(windows.word_ids[row, position]), scores[row, position]
                )
                best[start] = (centrality, token)
    return [best[start][1] for start in sorted(best)]
