"""Component `text_task`: token windows -> the answer of an NLP task (python).

One model per task kind: question_answering (answer span), token_classification (entities),
sequence_classification (label and probabilities), intent_slot (intent and slot entities) and
punctuation (punctuated, capitalized text). It calls the task's `bert` network itself with every
window of the texts it holds (see triton_python/text_task.py); the task is the network's head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.bert import token_limits
from modelrepo_gen.components.bert_source import BertSourceSettings, check_source, label_names
from modelrepo_gen.components.text_tokenizer import WINDOW_TENSORS
from modelrepo_gen.components.triton_python.text_answers import NETWORK_OUTPUTS, OUTPUT_TENSORS
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require

STRING = "TYPE_STRING"


@dataclass
class TextTaskSettings(BertSourceSettings):
    max_answer_length: int = 30  # tokens (question answering)
    allow_no_answer: bool = True  # question answering may answer "no answer"


class TextTask(PythonComponent):
    settings_schema = TextTaskSettings
    code = "text_task"

    def check(self, settings: TextTaskSettings, where: str) -> None:
        require(
            settings.head in NETWORK_OUTPUTS,
            f"{where}.head must be one of {', '.join(NETWORK_OUTPUTS)}, got '{settings.head}'",
        )
        check_source(settings, where)
        check_number(
            f"{where}.max_answer_length", settings.max_answer_length, at_least=1, unit="tokens"
        )

    def signature(self, settings: TextTaskSettings) -> Signature:
        outputs = []
        for name, (key, dtype) in OUTPUT_TENSORS[settings.head].items():
            size = len(label_names(settings)["LOGITS"]) if key == "probabilities" else 1
            outputs.append(TensorSpec(name, dtype, (size,)))
        network = ("INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS")
        return Signature(
            inputs=(TensorSpec("TEXT", STRING, (1,)), *WINDOW_TENSORS),
            outputs=tuple(outputs),
            calls={"network": (*network, *NETWORK_OUTPUTS[settings.head])},
        )

    def parameters(self, settings: TextTaskSettings) -> dict[str, str]:
        vocabulary, token_types = token_limits(settings)
        parameters = {
            "task": settings.head,
            "labels": json.dumps(label_names(settings), ensure_ascii=False),
            "vocab_size": str(vocabulary),
            "token_types": str(token_types),
        }
        if settings.head == "question_answering":
            parameters["max_answer_length"] = str(settings.max_answer_length)
            parameters["allow_no_answer"] = "true" if settings.allow_no_answer else "false"
        return parameters


COMPONENTS.register("text_task")(TextTask())
