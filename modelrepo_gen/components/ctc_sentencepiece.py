"""Component `ctc_sentencepiece_decoder`: log-probabilities + lengths -> text through a
SentencePiece model (BPE CTC models such as Citrinet), in the python backend.

Greedy CTC over token ids (best per frame, repeats collapsed, the blank dropped: the class after
the last token), then the `sentencepiece` library turns the ids into text, as NeMo does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number
from modelrepo_gen.loaders.nemo_archive import read_nemo

FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"
TOKENIZER = "tokenizer.model"


@dataclass
class CtcSentencePieceSettings:
    checkpoint: str = ""  # the .nemo file holding the tokenizer
    tokenizer: str = ""  # its SentencePiece model, as the file's config names it (nemo:<file>)
    classes: int = 0  # tokens, without the CTC blank


def _tokenizer_file(settings: CtcSentencePieceSettings, where: str) -> Path:
    return read_nemo(settings.checkpoint).member(settings.tokenizer, f"{where}.tokenizer")


class CtcSentencePieceDecoder(PythonComponent):
    settings_schema = CtcSentencePieceSettings
    code = "ctc_sentencepiece_decoder"

    def check(self, settings: CtcSentencePieceSettings, where: str) -> None:
        import sentencepiece

        check_number(f"{where}.classes", settings.classes, at_least=1)
        path = _tokenizer_file(settings, where)
        try:
            pieces = sentencepiece.SentencePieceProcessor(model_file=str(path)).get_piece_size()
        except (OSError, RuntimeError) as error:
            raise UserError(
                f"{where}.tokenizer {settings.tokenizer} is not a SentencePiece model: "
                f"{str(error).strip().splitlines()[0]}"
            ) from None
        if pieces != settings.classes:
            raise UserError(
                f"{where}.tokenizer {settings.tokenizer} has {pieces} tokens, but the network "
                f"gives {settings.classes} classes before the blank"
            )

    def signature(self, settings: CtcSentencePieceSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("LOGPROBS", FP32, (-1, settings.classes + 1), ragged=True),
                TensorSpec("ENCODED_LENGTHS", INT32, (1,)),
            ),
            outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)),),
        )

    def parameters(self, settings: CtcSentencePieceSettings) -> dict[str, str]:
        return {"tokenizer": TOKENIZER, "classes": str(settings.classes)}

    def files(self, settings: CtcSentencePieceSettings) -> dict[str, Path]:
        return {TOKENIZER: _tokenizer_file(settings, "decoder")}


COMPONENTS.register("ctc_sentencepiece_decoder")(CtcSentencePieceDecoder())
