"""What each NLP task answers for one text, from its windows and the network's outputs.

Shared by the served post-processing model and the in-process reference, so both answer with
the same logic. Answers are plain dicts; `to_tensors` gives the served output tensors (typed
tensors where the structure is fixed, a JSON string where a text has a variable number of
records) and `from_tensors` reads them back.

Copied beside the python-backend model that uses it; numpy only.
"""

from __future__ import annotations

import json

import numpy as np

try:  # beside model.py in a repository
    from answer_spans import best_answer
    from class_scores import classify
    from punctuated_text import punctuate
    from text_windows import Windows, merge_windows
    from word_labels import group_entities, label_words
except ImportError:  # imported from the package (in-process reference, tests)
    from modelrepo_gen.components.triton_python.answer_spans import best_answer
    from modelrepo_gen.components.triton_python.class_scores import classify
    from modelrepo_gen.components.triton_python.punctuated_text import punctuate
    from modelrepo_gen.components.triton_python.text_windows import Windows, merge_windows
    from modelrepo_gen.components.triton_python.word_labels import group_entities, label_words

# The network outputs each task reads, in the order the network gives them.
NETWORK_OUTPUTS = {
    "question_answering": ["START_LOGITS", "END_LOGITS"],
    "token_classification": ["TOKEN_LOGITS"],
    "sequence_classification": ["LOGITS"],
    "intent_slot": ["INTENT_LOGITS", "SLOT_LOGITS"],
    "punctuation": ["PUNCT_LOGITS", "CAPIT_LOGITS"],
}

# Network outputs with one row per window; the others have one row per token.
SEQUENCE_LEVEL = {"LOGITS", "INTENT_LOGITS"}

# Served output tensor -> (answer key, Triton type); JSON strings hold lists of records.
OUTPUT_TENSORS = {
    "question_answering": {
        "ANSWER": ("answer", "TYPE_STRING"),
        "ANSWER_START": ("start", "TYPE_INT32"),
        "ANSWER_END": ("end", "TYPE_INT32"),
        "SCORE": ("score", "TYPE_FP32"),
    },
    "token_classification": {"ENTITIES": ("entities", "TYPE_STRING")},
    "sequence_classification": {
        "LABEL": ("label", "TYPE_STRING"),
        "SCORE": ("score", "TYPE_FP32"),
        "PROBABILITIES": ("probabilities", "TYPE_FP32"),
    },
    "intent_slot": {
        "INTENT": ("intent", "TYPE_STRING"),
        "INTENT_SCORE": ("intent_score", "TYPE_FP32"),
        "SLOTS": ("slots", "TYPE_STRING"),
    },
    "punctuation": {"PUNCTUATED_TEXT": ("text", "TYPE_STRING")},
}
JSON_KEYS = {"entities", "slots"}


def answer(
    task: str,
    text: str,
    windows: Windows,
    outputs: dict[str, np.ndarray],
    labels: dict[str, list[str]],
    max_answer_length: int = 30,
    allow_no_answer: bool = True,
) -> dict:
    """One text's answer; `outputs` hold the network's outputs for its windows (row-aligned
    with `windows`, token axes as long as the windows')."""
    if task == "question_answering":
        found = best_answer(
            text,
            windows.offsets,
            windows.word_ids,
            windows.attention_mask,
            outputs["START_LOGITS"],
            outputs["END_LOGITS"],
            max_answer_length,
            allow_no_answer,
        )
        return {"answer": found.text, "start": found.start, "end": found.end, "score": found.score}
    if task == "sequence_classification":
        names = labels["LOGITS"]
        label, score, probabilities = classify(outputs["LOGITS"][0], names)
        return {
            "label": label,
            "score": score,
            "probabilities": dict(zip(names, probabilities.tolist())),
        }
    if task == "token_classification":
        tokens = merge_windows(windows, outputs["TOKEN_LOGITS"])
        words = label_words(tokens, labels["TOKEN_LOGITS"])
        return {"entities": group_entities(text, words)}
    if task == "intent_slot":
        intent, score, _ = classify(outputs["INTENT_LOGITS"][0], labels["INTENT_LOGITS"])
        tokens = merge_windows(windows, outputs["SLOT_LOGITS"])
        words = label_words(tokens, labels["SLOT_LOGITS"])
        return {"intent": intent, "intent_score": score, "slots": group_entities(text, words)}
    if task == "punctuation":
        both = np.concatenate([outputs["PUNCT_LOGITS"], outputs["CAPIT_LOGITS"]], axis=-1)
        tokens = merge_windows(windows, both)
        punctuated = punctuate(text, tokens, labels["PUNCT_LOGITS"], labels["CAPIT_LOGITS"])
        return {"text": punctuated}
    raise ValueError(f"unknown task {task!r}")


def to_tensors(task: str, result: dict) -> dict[str, np.ndarray]:
    """An answer as the served output tensors, without the batch axis."""
    tensors = {}
    for name, (key, dtype) in OUTPUT_TENSORS[task].items():
        value = result[key]
        if key in JSON_KEYS:
            value = json.dumps(value, ensure_ascii=False)
        if dtype == "TYPE_STRING":
            tensors[name] = np.array([value.encode("utf-8")], dtype=object)
        elif key == "probabilities":
            tensors[name] = np.array(list(value.values()), dtype=np.float32)
        else:
            tensors[name] = np.array(
                [value], dtype=np.int32 if dtype == "TYPE_INT32" else np.float32
            )
    return tensors


def from_tensors(task: str, tensors: dict[str, np.ndarray], class_labels: list[str]) -> dict:
    """Served output tensors of one text (no batch axis) -> its answer."""
    result = {}
    for name, (key, dtype) in OUTPUT_TENSORS[task].items():
        array = tensors[name]
        if key == "probabilities":
            result[key] = dict(zip(class_labels, array.astype(float).tolist()))
        elif dtype == "TYPE_STRING":
            text = array.reshape(-1)[0]
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            result[key] = json.loads(text) if key in JSON_KEYS else text
        elif dtype == "TYPE_INT32":
            result[key] = int(array.reshape(-1)[0])
        else:
            result[key] = float(array.reshape(-1)[0])
    return result
