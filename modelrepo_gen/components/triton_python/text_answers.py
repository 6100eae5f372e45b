"""What an NLP task answers for one text, from its windows and the network's outputs (each
task's answer and answer tensors are its entry in nlp_tasks.py).

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
    from nlp_tasks import TASKS
    from text_windows import Windows
except ImportError:  # imported from the package (in-process reference, tests)
    from modelrepo_gen.components.triton_python.nlp_tasks import TASKS
    from modelrepo_gen.components.triton_python.text_windows import Windows


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
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    return TASKS[task].answer(
        text,
        windows,
        outputs,
        labels,
        max_answer_length=max_answer_length,
        allow_no_answer=allow_no_answer,
    )


def to_tensors(task: str, result: dict) -> dict[str, np.ndarray]:
    """An answer as the served output tensors, without the batch axis."""
    tensors = {}
    for output in TASKS[task].answer_outputs:
        value = result[output.key]
        if output.json:
            value = json.dumps(value, ensure_ascii=False)
        if output.dtype == "TYPE_STRING":
            tensors[output.name] = np.array([value.encode("utf-8")], dtype=object)
        elif output.per_class:
            tensors[output.name] = np.array(list(value.values()), dtype=np.float32)
        else:
            dtype = np.int32 if output.dtype == "TYPE_INT32" else np.float32
            tensors[output.name] = np.array([value], dtype=dtype)
    return tensors


def from_tensors(task: str, tensors: dict[str, np.ndarray], class_labels: list[str]) -> dict:
    """Served output tensors of one text (no batch axis) -> its answer."""
    result = {}
    for output in TASKS[task].answer_outputs:
        array, key = tensors[output.name], output.key
        if output.per_class:
            result[key] = dict(zip(class_labels, array.astype(float).tolist()))
        elif output.dtype == "TYPE_STRING":
            text = array.reshape(-1)[0]
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            result[key] = json.loads(text) if output.json else text
        elif output.dtype == "TYPE_INT32":
            result[key] = int(array.reshape(-1)[0])
        else:
            result[key] = float(array.reshape(-1)[0])
    return result
