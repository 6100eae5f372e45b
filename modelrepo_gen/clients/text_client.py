"""Requests to a served NLP ensemble: find out what it takes, send the text, read the answer.

The ensemble says what it is: its inputs (TEXT, or QUESTION and CONTEXT) and its `task`
parameter; the class names of text classification's PROBABILITIES are the `labels` parameter
of the model that produces them. Every failure is one UserError line.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from modelrepo_gen.clients.triton_calls import (
    REQUEST_TIMEOUT_S,
    client_module,
    connect,
    ready_model_config,
    request_failure,
)
from modelrepo_gen.components.triton_python.nlp_tasks import TASKS
from modelrepo_gen.components.triton_python.text_answers import from_tensors
from modelrepo_gen.core.errors import UserError


def _parameter(config: dict, name: str) -> str | None:
    return config.get("parameters", {}).get(name, {}).get("string_value")


class TextModel:
    """A served NLP ensemble, described by its config."""

    def __init__(self, url: str, protocol: str, name: str) -> None:
        self.url, self.protocol, self.name = url, protocol, name
        config = ready_model_config(url, protocol, name)
        self.task = _parameter(config, "task")
        if self.task not in TASKS:
            raise UserError(
                f"model '{name}' is not an NLP ensemble of this tool (its `task` parameter "
                f"is {self.task!r}; expected one of {', '.join(TASKS)})"
            )
        self.inputs = [t["name"] for t in config.get("input", [])]
        self.class_labels = self._class_labels(config)

    def _class_labels(self, config: dict) -> list[str]:
        """The class names of PROBABILITIES, from the step that produces it."""
        for step in config.get("ensemble_scheduling", {}).get("step", []):
            if "PROBABILITIES" in step.get("output_map", {}).values():
                step_config = ready_model_config(self.url, self.protocol, step["model_name"])
                labels = json.loads(_parameter(step_config, "labels") or "{}")
                return labels.get("LOGITS", [])
        return []

    def request_texts(self, text: str | None, question: str | None, context: str | None) -> dict:
        """The input tensors' texts, checked against what the model takes."""
        if self.inputs == ["QUESTION", "CONTEXT"]:
            if text is not None:
                raise UserError(
                    f"model '{self.name}' answers a question about a context: pass --question "
                    "and --context, not a text"
                )
            if question is None or context is None:
                raise UserError(f"model '{self.name}' needs both --question and --context")
            return {"QUESTION": question, "CONTEXT": context}
        if question is not None or context is not None:
            raise UserError(f"model '{self.name}' takes one text, not --question/--context")
        if text is None:
            raise UserError(f"model '{self.name}' needs a text to work on")
        return {"TEXT": text}

    def ask(self, texts: dict[str, str]) -> dict:
        """The answer for one request (texts by input name)."""
        client = connect(self.url, self.protocol)
        try:
            return infer_answer(client, self.protocol, self, texts)
        finally:
            client.close()


def infer_answer(client: Any, protocol: str, model: TextModel, texts: dict[str, str]) -> dict:
    """One request on an open client: the texts (by input name) in, the answer out."""
    module = client_module(protocol)
    inputs = []
    for name, value in texts.items():
        tensor = module.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[value.encode("utf-8")]], dtype=object))
        inputs.append(tensor)
    names = [output.name for output in TASKS[model.task].answer_outputs]
    outputs = [module.InferRequestedOutput(name) for name in names]
    # An http client's timeout is set when it connects; a grpc one's per request.
    timeout = {"client_timeout": REQUEST_TIMEOUT_S} if protocol == "grpc" else {}
    try:
        result = client.infer(model.name, inputs, outputs=outputs, **timeout)
    except Exception as error:  # the server's refusal, a timeout, a dropped connection
        raise UserError(request_failure(model.name, error)) from None
    tensors = {name: result.as_numpy(name)[0] for name in names}
    return from_tensors(model.task, tensors, model.class_labels)
