"""The NLP post-processing logic (shared by the served models and the in-process reference),
checked against transformers' own pipelines and against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from helpers.text_fixtures import SENTENCES, minilm_folder, tiny_bert_config

from modelrepo_gen.components.triton_python.answer_spans import best_answer
from modelrepo_gen.components.triton_python.text_answers import answer, from_tensors, to_tensors
from modelrepo_gen.components.triton_python.text_windows import (
    NO_WORD,
    TextTooLong,
    load_tokenizer,
    merge_windows,
    stack_windows,
    tokenize_windows,
    unstack_windows,
)

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
LONG_TEXT = " ".join(SENTENCES * 6)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(minilm_folder() / "tokenizer.json"), 32, 8)


@pytest.fixture(scope="module")
def fast_tokenizer():
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(minilm_folder())


def run(model, windows):
    with torch.no_grad():
        return model(
            input_ids=torch.from_numpy(windows.input_ids),
            attention_mask=torch.from_numpy(windows.attention_mask),
            token_type_ids=torch.from_numpy(windows.token_type_ids),
        )


def test_windows_overlap_and_point_back_into_the_text(tokenizer):
    windows = tokenize_windows(tokenizer, LONG_TEXT, max_windows=50)
    assert windows.count > 3
    assert windows.input_ids.shape[1] == 32
    assert windows.attention_mask.sum(axis=1).max() == 32
    words = [set(row[row != NO_WORD].tolist()) for row in windows.word_ids]
    for left, right in itertools.pairwise(words):
        assert left & right, "neighbouring windows share their doc_stride tokens"
    merged = merge_windows(windows, np.zeros((*windows.input_ids.shape, 1)))
    starts = [t.start for t in merged]
    assert starts == sorted(set(starts)), "every token once, in order"
    assert {t.word for t in merged} == set().union(*words)
    for token in merged:  # spans cut real characters of the text
        assert 0 <= token.start < token.end <= len(LONG_TEXT)


def test_one_window_keeps_the_start_and_too_many_windows_are_refused(tokenizer):
    first = tokenize_windows(tokenizer, LONG_TEXT, max_windows=1)
    assert first.count == 1 and first.input_ids.shape[1] == 32
    with pytest.raises(TextTooLong, match="more than the maximum of 2"):
        tokenize_windows(tokenizer, LONG_TEXT, max_windows=2)


def test_question_windows_repeat_the_question_and_cut_the_context(tokenizer):
    question = "Who wrote novels?"
    windows = tokenize_windows(tokenizer, LONG_TEXT, question, max_windows=50)
    assert windows.count > 3
    question_ids = windows.input_ids[0, : np.flatnonzero(windows.token_type_ids[0])[0]]
    for row in range(windows.count):
        assert np.array_equal(windows.input_ids[row, : len(question_ids)], question_ids)
        context = windows.word_ids[row] != NO_WORD
        assert np.all(windows.token_type_ids[row][context] == 1)


def test_stacked_windows_unstack_to_each_text(tokenizer):
    items = [tokenize_windows(tokenizer, text, max_windows=50) for text in (LONG_TEXT, "hi")]
    stacked, counts = stack_windows(items)
    for index, item in enumerate(items):
        back = unstack_windows(stacked, int(counts[index, 0]), index)
        for name in ("input_ids", "attention_mask", "token_type_ids", "offsets", "word_ids"):
            assert np.array_equal(getattr(back, name), getattr(item, name))


@pytest.mark.parametrize("text", SENTENCES)
def test_entities_equal_transformers_token_classification_pipeline(text, fast_tokenizer):
    from transformers import BertForTokenClassification, pipeline

    torch.manual_seed(3)
    config = tiny_bert_config(
        fast_tokenizer.vocab_size,
        id2label=dict(enumerate(NER_LABELS)),
        label2id={label: i for i, label in enumerate(NER_LABELS)},
    )
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # confident, varied labels from random weights
    tokenizer = load_tokenizer(str(minilm_folder() / "tokenizer.json"), 64, 16)
    windows = tokenize_windows(tokenizer, text, max_windows=4)
    logits = run(model, windows).logits.numpy()
    ours = answer(
        "token_classification",
        text,
        windows,
        {"TOKEN_LOGITS": logits},
        {"TOKEN_LOGITS": NER_LABELS},
    )["entities"]
    theirs = pipeline(
        "token-classification",
        model=model,
        tokenizer=fast_tokenizer,
        aggregation_strategy="first",
    )(text)
    assert ours, "random confident weights label some words"
    assert [(e["label"], e["start"], e["end"]) for e in ours] == [
        (e["entity_group"], e["start"], e["end"]) for e in theirs
    ]
    assert [e["score"] for e in ours] == pytest.approx(
        [float(e["score"]) for e in theirs], abs=1e-5
    )
    assert all(e["text"] == text[e["start"] : e["end"]] for e in ours)


def test_classification_equals_transformers_text_classification_pipeline(fast_tokenizer):
    from transformers import BertForSequenceClassification, pipeline

    labels = ["negative", "neutral", "positive"]
    torch.manual_seed(5)
    config = tiny_bert_config(
        fast_tokenizer.vocab_size,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config).eval()
    tokenizer = load_tokenizer(str(minilm_folder() / "tokenizer.json"), 128, 16)
    classify = pipeline("text-classification", model=model, tokenizer=fast_tokenizer, top_k=None)
    for text in SENTENCES:
        windows = tokenize_windows(tokenizer, text, max_windows=1)
        ours = answer(
            "sequence_classification",
            text,
            windows,
            {"LOGITS": run(model, windows).logits.numpy()},
            {"LOGITS": labels},
        )
        theirs = {e["label"]: e["score"] for e in classify([text])[0]}
        assert ours["probabilities"] == pytest.approx(theirs, abs=1e-6)
        assert ours["label"] == max(theirs, key=theirs.get)
        assert ours["score"] == pytest.approx(max(theirs.values()), abs=1e-6)


def brute_force_answer(context, windows, start_logits, end_logits, max_length, allow_null):
    """Every span of every window scored one by one (the search's definition, unvectorised)."""
    best, null = ("", -1, -1, -1.0), 1.0
    for row in range(windows.count):
        n = int(windows.attention_mask[row].sum())
        ok = [windows.word_ids[row, i] != NO_WORD for i in range(n)]
        allowed = [ok[i] or (allow_null and i == 0) for i in range(n)]

        def softmax(logits, allowed=allowed, n=n):
            values = [float(logits[i]) if allowed[i] else -10000.0 for i in range(n)]
            top = max(values)
            exp = [np.exp(v - top) for v in values]
            return [e / sum(exp) for e in exp]

        p_start, p_end = softmax(start_logits[row]), softmax(end_logits[row])
        null = min(null, p_start[0] * p_end[0])
        for i in range(n):
            for j in range(i, min(n, i + max_length)):
                if ok[i] and ok[j] and p_start[i] * p_end[j] > best[3]:
                    # widened to whole words: every token of the first and the last word
                    word = windows.word_ids[row]
                    s = min(int(windows.offsets[row, k, 0]) for k in range(n) if word[k] == word[i])
                    e = max(int(windows.offsets[row, k, 1]) for k in range(n) if word[k] == word[j])
                    best = (context[s:e], s, e, p_start[i] * p_end[j])
    if allow_null and null > best[3]:
        return ("", -1, -1, null)
    return best


@pytest.mark.parametrize("allow_null", [True, False])
def test_answer_span_equals_brute_force_over_windows(tokenizer, fast_tokenizer, allow_null):
    from transformers import BertForQuestionAnswering

    torch.manual_seed(7)
    model = BertForQuestionAnswering(tiny_bert_config(fast_tokenizer.vocab_size)).eval()
    for question, context in [("Who wrote novels?", LONG_TEXT), ("Where?", SENTENCES[1])]:
        windows = tokenize_windows(tokenizer, context, question, max_windows=50)
        out = run(model, windows)
        start, end = out.start_logits.numpy(), out.end_logits.numpy()
        for max_length in (1, 5):
            found = best_answer(
                context,
                windows.offsets,
                windows.word_ids,
                windows.attention_mask,
                start,
                end,
                max_length,
                allow_null,
            )
            expected = brute_force_answer(context, windows, start, end, max_length, allow_null)
            assert (found.text, found.start, found.end) == expected[:3]
            assert found.score == pytest.approx(expected[3], rel=1e-9)
            if found.start >= 0:
                assert found.text == context[found.start : found.end] and found.text


def test_punctuation_marks_and_capitals_follow_each_words_first_token(tokenizer):
    text = "hello there how are you doing today josé"
    windows = tokenize_windows(tokenizer, text, max_windows=4)
    punct_labels, capit_labels = ["O", ",", ".", "?"], ["O", "U"]
    shape = windows.input_ids.shape
    punct = np.zeros((*shape, 4), dtype=np.float32)
    capit = np.zeros((*shape, 2), dtype=np.float32)
    wanted = {0: (",", "U"), 1: ("O", "O"), 5: ("?", "O"), 7: (".", "U")}  # word -> labels
    for row, position in zip(*np.nonzero(windows.word_ids != NO_WORD)):
        word = int(windows.word_ids[row, position])
        mark, case = wanted.get(word, ("O", "O"))
        punct[row, position, punct_labels.index(mark)] = 5.0
        capit[row, position, capit_labels.index(case)] = 5.0
    result = answer(
        "punctuation",
        text,
        windows,
        {"PUNCT_LOGITS": punct, "CAPIT_LOGITS": capit},
        {"PUNCT_LOGITS": punct_labels, "CAPIT_LOGITS": capit_labels},
    )
    assert result == {"text": "Hello, there how are you doing? today José."}


def test_answers_round_trip_through_the_served_tensors():
    answers = {
        "question_answering": {"answer": "São Paulo", "start": 3, "end": 12, "score": 0.5},
        "token_classification": {
            "entities": [{"label": "LOC", "text": "東京", "start": 0, "end": 2, "score": 0.25}]
        },
        "sequence_classification": {
            "label": "b",
            "score": 0.75,
            "probabilities": {"a": 0.25, "b": 0.75},
        },
        "intent_slot": {"intent": "play", "intent_score": 0.5, "slots": []},
        "punctuation": {"text": "Hello, 😀."},
    }
    for task, result in answers.items():
        assert from_tensors(task, to_tensors(task, result), ["a", "b"]) == result
