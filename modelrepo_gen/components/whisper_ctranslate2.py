"""Component `whisper_ctranslate2`: audio -> token ids by Whisper in CTranslate2 (python).

The runtime faster-whisper uses, chosen with `whisper_runtime=ctranslate2` instead of the
exported encoder and decoder: the python model calls the features model for the log-mel of
every 30 s window and decodes the windows of all requests of an execution together with
CTranslate2's own Whisper (encoder, cache and beam search in C++), in the language and task
chosen by the build or the request. Its answers are the onnxruntime generator's: TOKENS (each
window ended by the end-of-text id) and TOKEN_COUNT for the same detokenizer, and LANGUAGE.
The model's CTranslate2 files are copied beside model.py, so the repository stays
self-contained; a Hugging Face folder is converted to CTranslate2 first
(loaders/ctranslate2_conversion.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelrepo_gen.components.base import COMPONENTS
from modelrepo_gen.components.whisper_greedy import WhisperGreedy, WhisperGreedySettings
from modelrepo_gen.components.whisper_source import loaded, model_folder
from modelrepo_gen.core.errors import UserError, first_line
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number
from modelrepo_gen.loaders.ctranslate2_conversion import converted_folder

if TYPE_CHECKING:
    from modelrepo_gen.loaders.whisper_generation import WhisperGenerationFacts

# The precision group's name -> CTranslate2's compute type (weights are converted on load).
COMPUTE_TYPES = {"fp32": "float32", "int8": "int8", "fp16": "float16"}
DEVICES = {"cpu": "cpu", "gpu": "cuda"}
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
MAX_BEAM_SIZE = 16  # beams x windows of a batch are decoded at once: this bounds the memory
DEFAULT_BEAM_SIZE = 5  # faster-whisper's


@dataclass
class WhisperCTranslate2Settings(WhisperGreedySettings):
    precision: str = "fp32"  # the build's precision: fp32 | int8 (| fp16 on the gpu target)
    target: str = "cpu"  # the build's target: where CTranslate2 runs
    threads: int = 0  # CTranslate2's threads per execution; 0: one per core of the server
    max_batch_windows: int = 8  # windows decoded together (their caches are held at once)
    beam_size: int | None = (
        None  # beams per window (1: greedy; None: 5); a request may send its own
    )
    max_beam_size: int = MAX_BEAM_SIZE  # the most beams a request may ask for
    length_penalty: float = 1.0  # a hypothesis' score is divided by its length to this power


class WhisperCTranslate2(WhisperGreedy):
    settings_schema = WhisperCTranslate2Settings
    code = "whisper_ctranslate2"

    def check(self, settings: WhisperCTranslate2Settings, where: str) -> None:
        super().check(settings, where)  # the loader says what is wrong with the folder
        folder = self._folder(settings, where)
        self._files(settings, where)
        _check_language(settings, loaded(settings).facts, where)
        if settings.precision not in COMPUTE_TYPES:
            raise UserError(
                f"{where}.precision: CTranslate2 computes in {', '.join(COMPUTE_TYPES)}, "
                f"got {settings.precision!r}"
            )
        if settings.target == "cpu" and settings.precision == "fp16":
            raise UserError(
                f"{where}.precision: CTranslate2 has no float16 on the CPU; build "
                "whisper_runtime=ctranslate2 with precision=fp32 or precision=int8 (or target=gpu)"
            )
        check_number(f"{where}.threads", settings.threads, at_least=0, at_most=1024)
        check_number(f"{where}.max_batch_windows", settings.max_batch_windows, above=0)
        _open(folder, settings, where)

    def check_decoding(self, settings: WhisperCTranslate2Settings, where: str) -> None:
        check_number(
            f"{where}.max_beam_size", settings.max_beam_size, at_least=1, at_most=MAX_BEAM_SIZE
        )
        check_number(
            f"{where}.beam_size", beams(settings), at_least=1, at_most=settings.max_beam_size
        )
        check_number(f"{where}.length_penalty", settings.length_penalty, at_least=0, at_most=10)

    def signature(self, settings: WhisperCTranslate2Settings) -> Signature:
        greedy = super().signature(settings)
        features = {"features": greedy.calls["features"]}
        return Signature(inputs=greedy.inputs, outputs=greedy.outputs, calls=features)

    def parameters(self, settings: WhisperCTranslate2Settings) -> dict[str, str]:
        params = super().parameters(settings)
        facts = loaded(settings).facts
        return {
            **params,
            "languages": json.dumps(facts.language_ids, sort_keys=True),
            "tasks": json.dumps(facts.task_ids, sort_keys=True),
            "start": str(facts.decoder_start_token_id),
            "language": settings.language or "",
            "task": settings.task,
            "compute_type": COMPUTE_TYPES[settings.precision],
            "device": DEVICES.get(settings.target, "cpu"),
            "threads": str(settings.threads),
            "max_batch_windows": str(settings.max_batch_windows),
            "beam_size": str(beams(settings)),
            "max_beam_size": str(settings.max_beam_size),
            "length_penalty": repr(settings.length_penalty),
        }

    def files(self, settings: WhisperCTranslate2Settings) -> dict[str, Path]:
        return {**super().files(settings), **self._files(settings, "model")}

    def _folder(self, settings: WhisperCTranslate2Settings, where: str) -> Path:
        """The CTranslate2 folder served: model.path, or its conversion from Hugging Face."""
        folder = model_folder(settings, where)
        if (folder / "model.bin").is_file():
            return folder
        try:
            return converted_folder(folder)
        except UserError as error:
            raise UserError(f"{where}.path: {error}") from None

    def _files(self, settings: WhisperCTranslate2Settings, where: str) -> dict[str, Path]:
        folder = self._folder(settings, where)
        vocabulary = [name for name in VOCABULARY_FILES if (folder / name).is_file()]
        if not vocabulary or not (folder / "config.json").is_file():
            raise UserError(
                f"{where}.path: {folder} lacks CTranslate2's config.json or vocabulary "
                f"({' or '.join(VOCABULARY_FILES)})"
            )
        names = ("model.bin", "config.json", vocabulary[0])
        return {name: folder / name for name in names}


def beams(settings: WhisperCTranslate2Settings) -> int:
    return DEFAULT_BEAM_SIZE if settings.beam_size is None else settings.beam_size


def _check_language(
    settings: WhisperCTranslate2Settings, facts: WhisperGenerationFacts, where: str
) -> None:
    """The build's language and task are the model's own."""
    if not facts.is_multilingual:
        if settings.language not in (None, "en") or settings.task != "transcribe":
            asked = settings.language if settings.task == "transcribe" else settings.task
            raise UserError(
                f"{where}.{'language' if settings.task == 'transcribe' else 'task'}: this "
                f"Whisper model is English-only: it transcribes English, got {asked!r} (a "
                "multilingual model takes other languages and translate)"
            )
        return
    if settings.language is not None and settings.language not in facts.language_ids:
        codes = ", ".join(sorted(facts.language_ids))
        raise UserError(
            f"{where}.language: {settings.language!r} is not a language of this model "
            f"(null: detect it; or one of {codes})"
        )
    if settings.task not in facts.task_ids:
        raise UserError(
            f"{where}.task must be one of {', '.join(sorted(facts.task_ids))}, "
            f"got {settings.task!r}"
        )


def _open(folder: Path, settings: WhisperCTranslate2Settings, where: str) -> None:
    """The folder opens in CTranslate2 with the build's compute type (as the server will)."""
    try:
        import ctranslate2
    except ImportError as error:
        raise UserError(
            f"whisper_runtime=ctranslate2 needs the ctranslate2 package ({error})"
        ) from None
    if settings.target != "cpu":
        return  # a GPU's compute types are checked where it runs
    try:
        ctranslate2.models.Whisper(
            str(folder),
            device="cpu",
            compute_type=COMPUTE_TYPES[settings.precision],
            intra_threads=min(os.cpu_count() or 1, 4),
        )
    except (RuntimeError, ValueError) as error:
        first = first_line(error)
        raise UserError(f"{where}.path: CTranslate2 cannot open {folder}: {first}") from None


COMPONENTS.register("whisper_ctranslate2")(WhisperCTranslate2())
