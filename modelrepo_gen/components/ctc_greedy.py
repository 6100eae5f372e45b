"""Component `ctc_greedy_decoder`: log-probabilities + lengths -> text (python backend)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import require

FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"


@dataclass
class CtcGreedySettings:
    vocabulary: list[str] = field(default_factory=list)  # class order; the blank comes last


class CtcGreedyDecoder(PythonComponent):
    settings_schema = CtcGreedySettings
    code = "ctc_greedy_decoder"

    def check(self, settings: CtcGreedySettings, where: str) -> None:
        symbols = settings.vocabulary
        require(len(symbols) > 0, f"{where}.vocabulary must list at least one symbol, got none")
        seen: dict[str, int] = {}
        for i, symbol in enumerate(symbols):
            require(
                len(symbol) == 1,
                f"{where}.vocabulary.{i} must be one character, got {symbol!r} (the greedy CTC "
                "decoder emits one character per class)",
            )
            require(
                symbol not in seen,
                f"{where}.vocabulary.{i} {symbol!r} repeats {where}.vocabulary.{seen.get(symbol)}",
            )
            seen[symbol] = i

    def signature(self, settings: CtcGreedySettings) -> Signature:
        classes = len(settings.vocabulary) + 1
        return Signature(
            inputs=(
                TensorSpec("LOGPROBS", FP32, (-1, classes), ragged=True),
                TensorSpec("ENCODED_LENGTHS", INT32, (1,)),
            ),
            outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)),),
        )

    def parameters(self, settings: CtcGreedySettings) -> dict[str, str]:
        return {"vocabulary": json.dumps(settings.vocabulary)}


COMPONENTS.register("ctc_greedy_decoder")(CtcGreedyDecoder())
