"""Component `tts_text_frontend`: text -> symbol ids per sentence (python backend).

Shared by every speech synthesis pipeline: English normalization with the rules of a
conf/text_normalization/ file, sentence splitting, and the encoding of a conf/tts_symbols/ set
(characters for Tacotron 2 / FastPitch; for a Piper voice, phonemes from piper-tts's own
espeak-ng library through the voice's phoneme_id_map). The model code's two helper files
travel beside its model.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelrepo_gen.components.base import COMPONENTS, PythonComponent
from modelrepo_gen.components.piper_voice_source import voice_facts, voice_file, voice_json
from modelrepo_gen.components.triton_python.symbol_encoding import phoneme_sentences
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require
from modelrepo_gen.loaders.nemo_archive import read_nemo

INT32, INT64, STRING = "TYPE_INT32", "TYPE_INT64", "TYPE_STRING"
VOICE_JSON = "voice.onnx.json"
RULE_KEYS = ("characters", "abbreviations", "currencies", "currency_and", "symbols", "numbers")
CHARACTER_KEYS = ("pad", "special", "punctuation", "letters", "lowercase")
PHONEME_KEYS = ("voice_path", "espeak_voice")
NEMO_KEYS = ("tokens", "punctuation", "pad_with_space")
NEMO_IPA_KEYS = ("tokens", "checkpoint", "dictionary", "heteronyms", "tokenizer", "g2p")
ENCODINGS = {
    "characters": CHARACTER_KEYS,
    "piper_phonemes": PHONEME_KEYS,
    "nemo_characters": NEMO_KEYS,
    "nemo_ipa": NEMO_IPA_KEYS,
}
# The files a NeMo IPA tokenizer reads, by the name they get beside model.py.
IPA_FILES = {"dictionary": "ipa_dictionary.txt", "heteronyms": "ipa_heteronyms.txt"}


@dataclass
class TextFrontendSettings:
    rules: dict[str, Any] = field(default_factory=dict)  # a conf/text_normalization/ file
    symbols: dict[str, Any] = field(default_factory=dict)  # a conf/tts_symbols/ file
    max_characters: int = 2000  # longer texts are refused
    # Most ids of one sentence (the acoustic model's max_symbols): longer sentences are cut.
    max_sentence_symbols: int = 300
    # Most ids of one text, all sentences together (bounds a request's work): more is refused.
    max_symbols: int = 7500
    # The ids the acoustic model takes (its n_symbols): the symbol set must fit in them (null:
    # not checked here; a Piper voice's map is checked against the voice itself).
    model_symbols: int | None = None


class TextFrontend(PythonComponent):
    settings_schema = TextFrontendSettings
    code = "tts_text_frontend"

    def check(self, settings: TextFrontendSettings, where: str) -> None:
        check_number(f"{where}.max_characters", settings.max_characters, at_least=1)
        # A sentence cut to pieces shorter than this would hardly be speech (Piper: BOS, EOS
        # and a pad after every phoneme).
        check_number(f"{where}.max_sentence_symbols", settings.max_sentence_symbols, at_least=8)
        check_number(
            f"{where}.max_symbols", settings.max_symbols, at_least=settings.max_sentence_symbols
        )
        missing = [k for k in RULE_KEYS if k not in settings.rules]
        require(not missing, f"{where}.rules lacks {missing} (see conf/text_normalization/)")
        symbols = settings.symbols
        encoding = symbols.get("encoding")
        keys = ENCODINGS.get(encoding)
        require(
            keys is not None,
            f"{where}.symbols.encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}",
        )
        missing = [k for k in keys if k not in symbols]
        require(not missing, f"{where}.symbols lacks {missing} (see conf/tts_symbols/)")
        if encoding in ("characters", "nemo_characters", "nemo_ipa"):
            if encoding == "characters":
                table = [symbols["pad"], *symbols["special"], *symbols["punctuation"]]
                table += list(symbols["letters"])
            else:
                table = list(symbols["tokens"])
                require(" " in table, f"{where}.symbols.tokens must hold the space ' '")
            repeated = sorted({s for s in table if table.count(s) > 1})
            require(not repeated, f"{where}.symbols lists {repeated} more than once")
            require(
                settings.model_symbols is None or len(table) <= settings.model_symbols,
                f"the acoustic model takes {settings.model_symbols} symbol ids (its n_symbols), "
                f"fewer than the front-end's {len(table)} symbols ({where}.model_symbols)",
            )
        else:
            facts = voice_facts(symbols["voice_path"], f"{where}.symbols.voice_path")
            for symbol in ("_", "^", "$"):
                require(
                    symbol in facts["phoneme_id_map"],
                    f"the Piper voice's phoneme_id_map has no '{symbol}' (pad, BOS, EOS)",
                )
            _check_espeak_voice(symbols["espeak_voice"], where)

    def signature(self, settings: TextFrontendSettings) -> Signature:
        return Signature(
            inputs=(TensorSpec("TEXT", STRING, (1,)),),
            outputs=(
                TensorSpec("SYMBOL_IDS", INT64, (-1,)),
                TensorSpec("SENTENCE_LENGTHS", INT32, (-1,)),
            ),
        )

    def parameters(self, settings: TextFrontendSettings) -> dict[str, str]:
        phonemes = settings.symbols["encoding"] == "piper_phonemes"
        return {
            "rules": json.dumps(settings.rules, sort_keys=True),
            "symbols": json.dumps(settings.symbols, sort_keys=True),
            "phoneme_id_map": VOICE_JSON if phonemes else "",
            "symbol_files": json.dumps(
                {key: IPA_FILES[key] for key in self._ipa_files(settings)}, sort_keys=True
            ),
            "max_characters": str(settings.max_characters),
            "max_sentence_symbols": str(settings.max_sentence_symbols),
            "max_symbols": str(settings.max_symbols),
        }

    def _ipa_files(self, settings: TextFrontendSettings) -> dict[str, Path]:
        """The .nemo members a NeMo IPA tokenizer reads (none for other encodings)."""
        symbols = settings.symbols
        if symbols["encoding"] != "nemo_ipa":
            return {}
        archive = read_nemo(symbols["checkpoint"], "model.acoustic")
        return {
            key: archive.member(symbols[key], f"text_tokenizer.g2p.{key}")
            for key in IPA_FILES
            if symbols[key]
        }

    def files(self, settings: TextFrontendSettings) -> dict[str, Path]:
        files = {IPA_FILES[key]: path for key, path in self._ipa_files(settings).items()}
        if settings.symbols["encoding"] == "piper_phonemes":
            files[VOICE_JSON] = voice_json(voice_file(settings.symbols["voice_path"]))
        return files


def _check_espeak_voice(voice: str, where: str) -> None:
    """Piper's espeak-ng must know the voice the Piper voice names, or every request would
    fail."""
    try:
        phoneme_sentences("test", voice)
    except ImportError:
        raise UserError(
            f"{where}.symbols: Piper phonemes need the piper-tts package (pip install "
            "piper-tts==1.8.0)"
        ) from None
    except RuntimeError:
        raise UserError(
            f"{where}.symbols.espeak_voice: espeak-ng has no voice '{voice}' (set by the Piper "
            "voice's .onnx.json espeak.voice)"
        ) from None


COMPONENTS.register("tts_text_frontend")(TextFrontend())
