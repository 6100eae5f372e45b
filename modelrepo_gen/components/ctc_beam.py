"""Component `ctc_beam_decoder`: log-probabilities + lengths -> text by CTC beam search with an
optional KenLM word language model (flashlight-text, as Riva's flashlight decoder), in the
python backend (triton_python/ctc_beam_decoder.py).

The tokens are a character model's symbols (`vocabulary`) or a SentencePiece model read from a
.nemo file (`checkpoint`, `tokenizer`, `classes`), as for the greedy decoders. The language model
(`lm_path`, ARPA or KenLM binary) and the lexicon (`lexicon_path`: `word [token ...]` per line; a
word alone is spelled in the model's tokens) are copied into the repository. Without a lexicon,
an ARPA model's own words are the lexicon; without either, the search is plain beam search over
the tokens. The build loads them as the server will, so a file that cannot serve is refused here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.ctc_greedy import CtcGreedyDecoder, CtcGreedySettings
from modelrepo_gen.components.ctc_sentencepiece import (
    CtcSentencePieceDecoder,
    CtcSentencePieceSettings,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require

FP32, INT32, STRING = "TYPE_FP32", "TYPE_INT32", "TYPE_STRING"
TOKENIZER = "tokenizer.model"
LEXICON = "lexicon.txt"


@dataclass
class CtcBeamSettings:
    # The tokens: a character model's symbols in class order (the blank comes last), or a
    # SentencePiece model in a .nemo file, as the greedy decoders take them.
    vocabulary: list[str] | None = None
    checkpoint: str = ""
    tokenizer: str = ""
    classes: int = 0
    # flashlight's search (Riva's defaults)
    beam_size: int = 32  # hypotheses kept per frame
    beam_size_token: int = 0  # tokens tried per frame; 0: all
    beam_threshold: float = 20.0  # hypotheses this far below the best are dropped
    lm_weight: float = 0.8  # the language model's weight
    word_insertion_score: float = 1.0  # added for each word
    lm_path: str | None = None  # KenLM model: ARPA text or KenLM binary
    lexicon_path: str | None = None  # `word [token ...]` per line


def _language_model_name(path: Path) -> str:
    from modelrepo_gen.components.triton_python.ctc_beam_search import is_arpa

    return "language_model.arpa" if is_arpa(path) else "language_model.binary"


def _file(value: str | None, label: str) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    require(path.is_file(), f"{label}: {value} is not a file")
    return path.resolve()


class CtcBeamDecoder(PythonComponent):
    settings_schema = CtcBeamSettings
    code = "ctc_beam_decoder"

    def _classes(self, settings: CtcBeamSettings) -> int:
        if settings.tokenizer:
            return settings.classes
        return len(settings.vocabulary or [])

    def check(self, settings: CtcBeamSettings, where: str) -> None:
        require(
            bool(settings.vocabulary) != bool(settings.tokenizer),
            f"{where} needs either vocabulary (characters) or tokenizer (a SentencePiece model in "
            "checkpoint), not both",
        )
        if settings.tokenizer:
            CtcSentencePieceDecoder().check(self._sentencepiece(settings), where)
        else:
            CtcGreedyDecoder().check(CtcGreedySettings(settings.vocabulary or []), where)
        check_number(f"{where}.beam_size", settings.beam_size, at_least=1)
        check_number(f"{where}.beam_size_token", settings.beam_size_token, at_least=0)
        check_number(f"{where}.beam_threshold", settings.beam_threshold, above=0)
        check_number(f"{where}.lm_weight", settings.lm_weight, at_least=0)
        check_number(f"{where}.word_insertion_score", settings.word_insertion_score)
        lm = _file(settings.lm_path, f"{where}.lm_path")
        lexicon = _file(settings.lexicon_path, f"{where}.lexicon_path")
        if lm is not None and lexicon is None:
            require(
                _language_model_name(lm).endswith(".arpa"),
                f"{where}.lm_path {lm} is a KenLM binary, whose words cannot be listed: give "
                f"{where}.lexicon_path too (or the ARPA file)",
            )
        self._load(settings, where, lm, lexicon)

    def _load(self, settings: CtcBeamSettings, where: str, lm: Path | None, lexicon: Path | None):
        """Load the search as the served model will: a file that cannot serve fails here."""
        from modelrepo_gen.components.triton_python.ctc_beam_decoder import load_search

        folder = Path("/")
        params = self.parameters(settings)
        params["language_model"] = str(lm or "")
        params["lexicon"] = str(lexicon or "")
        if settings.tokenizer:
            params["tokenizer"] = str(self.files(settings)[TOKENIZER])
        try:
            search = load_search(folder, params)
        except (RuntimeError, OSError, ValueError, UnicodeDecodeError) as error:
            what = f"{where}.lm_path {lm}" if lm else f"{where}.lexicon_path {lexicon}"
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise UserError(f"{what} cannot be loaded: {reason}") from None
        if (lm or lexicon) and search.lexicon_size() == 0:
            source = f"{where}.lexicon_path {lexicon}" if lexicon else f"{where}.lm_path {lm}"
            raise UserError(
                f"none of the words of {source} can be written in the model's tokens (check "
                "that the words' letters are the vocabulary's, e.g. lower case)"
            )

    def _sentencepiece(self, settings: CtcBeamSettings) -> CtcSentencePieceSettings:
        return CtcSentencePieceSettings(settings.checkpoint, settings.tokenizer, settings.classes)

    def signature(self, settings: CtcBeamSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("LOGPROBS", FP32, (-1, self._classes(settings) + 1), ragged=True),
                TensorSpec("ENCODED_LENGTHS", INT32, (1,)),
            ),
            outputs=(TensorSpec("TRANSCRIPT", STRING, (1,)),),
        )

    def parameters(self, settings: CtcBeamSettings) -> dict[str, str]:
        classes = self._classes(settings) + 1
        options = {
            "beam_size": settings.beam_size,
            "beam_size_token": settings.beam_size_token or classes,
            "beam_threshold": settings.beam_threshold,
            "lm_weight": settings.lm_weight,
            "word_insertion_score": settings.word_insertion_score,
        }
        lm = Path(settings.lm_path) if settings.lm_path else None
        return {
            "options": json.dumps(options, sort_keys=True),
            "vocabulary": json.dumps(settings.vocabulary) if not settings.tokenizer else "",
            "tokenizer": TOKENIZER if settings.tokenizer else "",
            "language_model": _language_model_name(lm) if lm else "",
            "lexicon": LEXICON if settings.lexicon_path else "",
        }

    def files(self, settings: CtcBeamSettings) -> dict[str, Path]:
        files = {}
        if settings.tokenizer:
            files.update(CtcSentencePieceDecoder().files(self._sentencepiece(settings)))
        if settings.lm_path:
            lm = Path(settings.lm_path).expanduser().resolve()
            files[_language_model_name(lm)] = lm
        if settings.lexicon_path:
            files[LEXICON] = Path(settings.lexicon_path).expanduser().resolve()
        return files


COMPONENTS.register("ctc_beam_decoder")(CtcBeamDecoder())
