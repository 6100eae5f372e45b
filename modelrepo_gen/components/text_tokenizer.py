"""Component `text_tokenizer`: raw text -> token windows for a BERT-family network (python).

Tokenizes with the model folder's own tokenizer.json (copied into the repository) using the
Hugging Face `tokenizers` library; a text longer than `max_seq_length` tokens becomes windows
overlapping by `doc_stride` tokens (see triton_python/text_windows.py). For question answering
the inputs are QUESTION and CONTEXT and every window repeats the question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.bert_source import BertSourceSettings, check_source, tokenizer_json
from modelrepo_gen.components.triton_python.nlp_tasks import HEADS
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number

INT32, INT64, STRING = "TYPE_INT32", "TYPE_INT64", "TYPE_STRING"
TOKENIZER = "tokenizer.json"

# What the post-processing model reads: the windows and where each token lies in the text.
WINDOW_TENSORS = (
    TensorSpec("INPUT_IDS", INT64, (-1, -1), ragged=True),
    TensorSpec("ATTENTION_MASK", INT64, (-1, -1), ragged=True),
    TensorSpec("TOKEN_TYPE_IDS", INT64, (-1, -1), ragged=True),
    TensorSpec("TOKEN_OFFSETS", INT32, (-1, -1, 2), ragged=True),
    TensorSpec("WORD_IDS", INT32, (-1, -1), ragged=True),
    TensorSpec("WINDOW_COUNT", INT32, (1,)),
)


@dataclass
class TextTokenizerSettings(BertSourceSettings):
    doc_stride: int = 32  # tokens two neighbouring windows share
    max_windows: int = 16  # windows one text may need; 1: a longer text keeps its first window
    max_characters: int = 100_000  # longer texts are refused before tokenizing


def text_inputs(head: str) -> list[str]:
    """The texts the head's task takes (TEXT, or QUESTION and CONTEXT)."""
    return list(HEADS[head].inputs)


class TextTokenizer(PythonComponent):
    settings_schema = TextTokenizerSettings
    code = "text_tokenizer"

    def check(self, settings: TextTokenizerSettings, where: str) -> None:
        check_source(settings, where)
        check_number(
            f"{where}.doc_stride",
            settings.doc_stride,
            at_least=0,
            below=settings.max_seq_length // 2,
            unit=f"tokens (less than half of max_seq_length={settings.max_seq_length})",
        )
        check_number(f"{where}.max_windows", settings.max_windows, at_least=1, unit="windows")
        check_number(
            f"{where}.max_characters", settings.max_characters, at_least=1, unit="characters"
        )

    def signature(self, settings: TextTokenizerSettings) -> Signature:
        return Signature(
            inputs=tuple(TensorSpec(name, STRING, (1,)) for name in text_inputs(settings.head)),
            outputs=WINDOW_TENSORS,
        )

    def parameters(self, settings: TextTokenizerSettings) -> dict[str, str]:
        return {
            "tokenizer": TOKENIZER,
            "max_seq_length": str(settings.max_seq_length),
            "doc_stride": str(settings.doc_stride),
            "max_windows": str(settings.max_windows),
            "max_characters": str(settings.max_characters),
            "texts": json.dumps(text_inputs(settings.head)),
        }

    def files(self, settings: TextTokenizerSettings) -> dict[str, Path]:
        return {TOKENIZER: tokenizer_json(settings)}


COMPONENTS.register("text_tokenizer")(TextTokenizer())
