"""The NLP tasks, one entry each: what the task's network gives, what its pipeline takes and
answers, how the answer is found and how it reads.

Everything that differs from one task to the next is here, read by the `bert` network (head
layers, outputs, label files, the names of an imported model.onnx's outputs), the tokenizer and
post-processing components, the served post-processing model (the answer), the config (an NLP
pipeline's ensemble inputs and outputs: `${nlp_task:HEAD,PART}`) and the `ask` client (how an
answer reads). A new task is a new entry.

Copied beside the python-backend model that uses it; numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

try:  # beside model.py in a repository
    from answer_spans import best_answer
    from class_scores import classify
    from punctuated_text import punctuate
    from text_windows import merge_windows
    from word_labels import group_entities, label_words
except ImportError:  # imported from the package (plan, in-process reference, tests)
    from modelrepo_gen.components.triton_python.answer_spans import best_answer
    from modelrepo_gen.components.triton_python.class_scores import classify
    from modelrepo_gen.components.triton_python.punctuated_text import punctuate
    from modelrepo_gen.components.triton_python.text_windows import merge_windows
    from modelrepo_gen.components.triton_python.word_labels import group_entities, label_words

STRING, INT32, FP32 = "TYPE_STRING", "TYPE_INT32", "TYPE_FP32"


@dataclass(frozen=True)
class NetworkOutput:
    """A tensor the network gives: fp32, [batch, tokens (per token), classes (vector)]."""

    name: str
    per_token: bool  # one row per token; else one per window (read from its [CLS] state)
    vector: bool  # ends in an axis of classes (or features); else one number per token
    # The head's Linear layer computing it, by its checkpoint name; outputs naming the same
    # layer are its columns, in order (question answering's start and end logits).
    layer: str | None
    onnx_names: tuple[str, ...]  # its usual names in a model.onnx exported elsewhere
    labels: str | None = None  # the label-file setting naming its classes (and seeded_<it>)
    id2label: str = "id2label"  # the checkpoint's config.json field: class index -> name

    @property
    def rank(self) -> int:
        """Axes, the batch included."""
        return 1 + self.per_token + self.vector


@dataclass(frozen=True)
class AnswerOutput:
    """A served output tensor of the answer: [batch, 1] (or [batch, classes] per class)."""

    name: str
    key: str  # its entry in the answer dict
    dtype: str  # Triton type
    json: bool = False  # a string holding a JSON list of records (a text has any number)
    per_class: str | None = None  # one value per class of this network output: {label: value}


@dataclass(frozen=True)
class Task:
    name: str  # the network's head, the post-processing model's and the ensemble's `task`
    network_outputs: tuple[NetworkOutput, ...]
    # (text, windows, network outputs, labels, **settings) -> the answer dict of one text
    answer: Callable[..., dict] | None = None
    answer_outputs: tuple[AnswerOutput, ...] = ()
    describe: Callable[[dict], list[str]] | None = None  # the answer as lines a person reads
    inputs: tuple[str, ...] = ("TEXT",)  # the ensemble's texts (the tokenizer's inputs)
    text: str = "TEXT"  # the input the answer points into: the post-processing model's TEXT
    settings: tuple[str, ...] = ()  # post-processing settings its answer takes (parameters)
    pooler: bool = False  # the head reads BERT's pooler ([CLS] through dense and tanh)
    # The transformers class whose `classifier` layer this head is: a folder's `classifier` is
    # this task's trained head only in a folder of that class.
    hf_classifier_of: str | None = None

    def head_layers(self) -> list[tuple[str, tuple[NetworkOutput, ...]]]:
        """(Linear layer, the outputs it gives) in the network's order."""
        layers: dict[str, tuple[NetworkOutput, ...]] = {}
        for output in self.network_outputs:
            if output.layer:
                layers[output.layer] = (*layers.get(output.layer, ()), output)
        return list(layers.items())

    def labeled_outputs(self) -> tuple[NetworkOutput, ...]:
        return tuple(output for output in self.network_outputs if output.labels)


def _entity_lines(entities: list[dict], none: str) -> list[str]:
    lines = [
        f"{e['label']}\t{e['text']}\t[{e['start']}, {e['end']})\t{e['score']:.4f}" for e in entities
    ]
    return lines or [none]


# Question answering: QUESTION + CONTEXT -> the answer span cut from the context.


def _span(text, windows, outputs, labels, max_answer_length=30, allow_no_answer=True) -> dict:
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


def _describe_span(answer: dict) -> list[str]:
    if answer["start"] < 0:
        return [f"no answer (score {answer['score']:.4f})"]
    return [
        f"answer: {answer['answer']}",
        f"characters {answer['start']}-{answer['end']} of the context, score {answer['score']:.4f}",
    ]


QUESTION_ANSWERING = Task(
    name="question_answering",
    network_outputs=(
        NetworkOutput("START_LOGITS", True, False, "qa_outputs", ("start_logits",)),
        NetworkOutput("END_LOGITS", True, False, "qa_outputs", ("end_logits",)),
    ),
    answer=_span,
    answer_outputs=(
        AnswerOutput("ANSWER", "answer", STRING),
        AnswerOutput("ANSWER_START", "start", INT32),
        AnswerOutput("ANSWER_END", "end", INT32),
        AnswerOutput("SCORE", "score", FP32),
    ),
    describe=_describe_span,
    inputs=("QUESTION", "CONTEXT"),
    text="CONTEXT",
    settings=("max_answer_length", "allow_no_answer"),
)


# Named entities: TEXT -> its entities (BIO tags of each word's first token, merged).


def _entities(text, windows, outputs, labels, **_) -> dict:
    tokens = merge_windows(windows, outputs["TOKEN_LOGITS"])
    words = label_words(tokens, labels["TOKEN_LOGITS"])
    return {"entities": group_entities(text, words)}


TOKEN_CLASSIFICATION = Task(
    name="token_classification",
    network_outputs=(
        NetworkOutput("TOKEN_LOGITS", True, True, "classifier", ("logits",), labels="labels"),
    ),
    answer=_entities,
    answer_outputs=(AnswerOutput("ENTITIES", "entities", STRING, json=True),),
    describe=lambda answer: _entity_lines(answer["entities"], "no entities"),
    hf_classifier_of="BertForTokenClassification",
)


# Text classification: TEXT -> its label, the label's probability and every probability.


def _label(text, windows, outputs, labels, **_) -> dict:
    names = labels["LOGITS"]
    label, score, probabilities = classify(outputs["LOGITS"][0], names)
    return {
        "label": label,
        "score": score,
        "probabilities": dict(zip(names, probabilities.tolist())),
    }


def _describe_label(answer: dict) -> list[str]:
    lines = [f"label: {answer['label']} ({answer['score']:.4f})"]
    return lines + [f"  {name}: {p:.4f}" for name, p in answer["probabilities"].items()]


SEQUENCE_CLASSIFICATION = Task(
    name="sequence_classification",
    network_outputs=(
        NetworkOutput("LOGITS", False, True, "classifier", ("logits",), labels="labels"),
    ),
    answer=_label,
    answer_outputs=(
        AnswerOutput("LABEL", "label", STRING),
        AnswerOutput("SCORE", "score", FP32),
        AnswerOutput("PROBABILITIES", "probabilities", FP32, per_class="LOGITS"),
    ),
    describe=_describe_label,
    pooler=True,
    hf_classifier_of="BertForSequenceClassification",
)


# Intent and slots (one joint model): TEXT -> its intent (first window) and slot entities.


def _intent_slots(text, windows, outputs, labels, **_) -> dict:
    intent, score, _ = classify(outputs["INTENT_LOGITS"][0], labels["INTENT_LOGITS"])
    tokens = merge_windows(windows, outputs["SLOT_LOGITS"])
    words = label_words(tokens, labels["SLOT_LOGITS"])
    return {"intent": intent, "intent_score": score, "slots": group_entities(text, words)}


def _describe_intent_slots(answer: dict) -> list[str]:
    intent = f"intent: {answer['intent']} ({answer['intent_score']:.4f})"
    return [intent, *_entity_lines(answer["slots"], "no slots")]


INTENT_SLOT = Task(
    name="intent_slot",
    network_outputs=(
        NetworkOutput(
            "INTENT_LOGITS",
            False,
            True,
            "intent_classifier",
            ("intent_logits",),
            labels="labels",
            id2label="intent_id2label",
        ),
        NetworkOutput(
            "SLOT_LOGITS",
            True,
            True,
            "slot_classifier",
            ("slot_logits",),
            labels="slot_labels",
            id2label="slot_id2label",
        ),
    ),
    answer=_intent_slots,
    answer_outputs=(
        AnswerOutput("INTENT", "intent", STRING),
        AnswerOutput("INTENT_SCORE", "intent_score", FP32),
        AnswerOutput("SLOTS", "slots", STRING, json=True),
    ),
    describe=_describe_intent_slots,
)


# Punctuation and capitalization: TEXT -> the text punctuated and capitalized, word by word.


def _punctuated(text, windows, outputs, labels, **_) -> dict:
    both = np.concatenate([outputs["PUNCT_LOGITS"], outputs["CAPIT_LOGITS"]], axis=-1)
    tokens = merge_windows(windows, both)
    return {"text": punctuate(text, tokens, labels["PUNCT_LOGITS"], labels["CAPIT_LOGITS"])}


PUNCTUATION = Task(
    name="punctuation",
    network_outputs=(
        NetworkOutput(
            "PUNCT_LOGITS",
            True,
            True,
            "punct_classifier",
            ("punct_logits",),
            labels="labels",
            id2label="punct_id2label",
        ),
        NetworkOutput(
            "CAPIT_LOGITS",
            True,
            True,
            "capit_classifier",
            ("capit_logits",),
            labels="capit_labels",
            id2label="capit_id2label",
        ),
    ),
    answer=_punctuated,
    answer_outputs=(AnswerOutput("PUNCTUATED_TEXT", "text", STRING),),
    describe=lambda answer: [answer["text"]],
)

# Tasks with an answer: each has a pipeline (tokenizer -> post-processing calling the network).
TASKS = {
    task.name: task
    for task in (
        QUESTION_ANSWERING,
        TOKEN_CLASSIFICATION,
        SEQUENCE_CLASSIFICATION,
        INTENT_SLOT,
        PUNCTUATION,
    )
}

# The bare encoder: a network without a head, whose hidden states a pipeline may read itself.
FEATURE_EXTRACTION = Task(
    name="feature_extraction",
    network_outputs=(
        NetworkOutput("HIDDEN_STATES", True, True, None, ("last_hidden_state", "hidden_states")),
    ),
)

# Every head the `bert` network can have.
HEADS = {**TASKS, FEATURE_EXTRACTION.name: FEATURE_EXTRACTION}
