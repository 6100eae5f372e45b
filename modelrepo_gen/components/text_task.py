"""Component `text_task`: token windows -> the answer of an NLP task (python).

One model per task of triton_python/nlp_tasks.py (its answer tensors, the network outputs it
reads, the settings its answer takes). It calls the task's `bert` network itself with every
window of the texts it holds (see triton_python/text_task.py); the task is the network's head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.bert import token_limits
from modelrepo_gen.components.bert_source import BertSourceSettings, check_source, label_names
from modelrepo_gen.components.text_tokenizer import WINDOW_TENSORS
from modelrepo_gen.components.triton_python.nlp_tasks import TASKS
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
            settings.head in TASKS,
            f"{where}.head must be one of {', '.join(TASKS)}, got '{settings.head}'",
        )
        check_source(settings, where)
        check_number(
            f"{where}.max_answer_length", settings.max_answer_length, at_least=1, unit="tokens"
        )

    def signature(self, settings: TextTaskSettings) -> Signature:
        task = TASKS[settings.head]
        outputs = []
        for output in task.answer_outputs:
            size = len(label_names(settings)[output.per_class]) if output.per_class else 1
            outputs.append(TensorSpec(output.name, output.dtype, (size,)))
        network = ("INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS")
        return Signature(
            inputs=(TensorSpec("TEXT", STRING, (1,)), *WINDOW_TENSORS),
            outputs=tuple(outputs),
            calls={"network": (*network, *(o.name for o in task.network_outputs))},
        )

    def parameters(self, settings: TextTaskSettings) -> dict[str, str]:
        vocabulary, token_types = token_limits(settings)
        parameters = {
            "task": settings.head,
            "labels": json.dumps(label_names(settings), ensure_ascii=False),
            "vocab_size": str(vocabulary),
            "token_types": str(token_types),
        }
        for name in TASKS[settings.head].settings:  # those its answer takes
            value = getattr(settings, name)
            parameters[name] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value)
            )
        return parameters


COMPONENTS.register("text_task")(TextTask())
