"""Component `whisper_detokenizer`: token ids -> text with the model's tokenizer.json (python).

Each segment's ids end with the end-of-text id; every segment is decoded on its own (special
tokens skipped, whitespace trimmed) and the segments' texts are joined with a space into
TRANSCRIPT; SEGMENTS gives them with their times (JSON: [{"start", "end", "text"}, ...]).
"""

from __future__ import annotations

from pathlib import Path

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.whisper_source import WhisperSourceSettings, loaded
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature

FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"
TOKENIZER = "tokenizer.json"


class WhisperDetokenizer(PythonComponent):
    settings_schema = WhisperSourceSettings
    code = "whisper_detokenizer"

    def check(self, settings: WhisperSourceSettings, where: str) -> None:
        loaded(settings, where)

    def signature(self, settings: WhisperSourceSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("TOKENS", INT32, (-1,), ragged=True),
                TensorSpec("TOKEN_COUNT", INT32, (1,)),
                TensorSpec("SEGMENT_TIMES", FP32, (-1,), ragged=True),
            ),
            outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)), TensorSpec("SEGMENTS", STRING, (1,))),
        )

    def parameters(self, settings: WhisperSourceSettings) -> dict[str, str]:
        return {"eos": str(loaded(settings).facts.eos_token_id), "tokenizer": TOKENIZER}

    def files(self, settings: WhisperSourceSettings) -> dict[str, Path]:
        return {TOKENIZER: loaded(settings).tokenizer_json}


COMPONENTS.register("whisper_detokenizer")(WhisperDetokenizer())
