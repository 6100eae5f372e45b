"""Loads a Whisper model from a folder: CTranslate2 (model.bin) or Hugging Face (safetensors).

Either way the result is transformers' WhisperForConditionalGeneration in fp32, the path of its
tokenizer.json and the token facts greedy decoding needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from transformers import WhisperForConditionalGeneration

from modelrepo_gen.core.errors import UserError, first_line
from modelrepo_gen.loaders.ctranslate2_whisper import import_ctranslate2_whisper
from modelrepo_gen.loaders.whisper_generation import WhisperGenerationFacts, generation_facts

HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
EXPECTED = (
    "expected a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) or a "
    "Hugging Face Whisper folder (config.json, model.safetensors, tokenizer.json)"
)


class LoadedWhisper(NamedTuple):
    model: WhisperForConditionalGeneration
    tokenizer_json: Path
    facts: WhisperGenerationFacts


def load_whisper(path: Path | str) -> LoadedWhisper:
    """The model in `path`; UserError naming what is wrong with any other folder or file."""
    folder = Path(path)
    if not folder.exists():
        raise UserError(f"no such Whisper model folder: {folder}")
    if not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder; {EXPECTED}")
    config = _json_object(folder / "config.json")
    if (folder / "model.bin").is_file():
        _require(folder / "tokenizer.json")
        model, facts = import_ctranslate2_whisper(folder)
    elif any((folder / name).is_file() for name in HF_WEIGHTS):
        _require(folder / "tokenizer.json")
        model, facts = _load_hugging_face(folder, config)
    else:
        raise UserError(f"{folder} holds no model.bin or model.safetensors; {EXPECTED}")
    return LoadedWhisper(model, folder / "tokenizer.json", facts)


def _require(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{path.parent} lacks {path.name}; {EXPECTED}")


def _json_object(path: Path) -> dict:
    _require(path)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not readable JSON ({error}); {EXPECTED}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path} is not a JSON object; {EXPECTED}")
    return loaded


def _load_hugging_face(
    folder: Path, config: dict
) -> tuple[WhisperForConditionalGeneration, WhisperGenerationFacts]:
    if config.get("model_type") != "whisper":
        raise UserError(
            f"{folder / 'config.json'} describes model_type {config.get('model_type')!r}, "
            "not 'whisper'"
        )
    try:
        model = WhisperForConditionalGeneration.from_pretrained(
            folder, local_files_only=True, dtype="float32"
        )
    except (OSError, ValueError, RuntimeError) as error:
        first = first_line(error)
        raise UserError(f"{folder} cannot be loaded as Whisper: {first}") from None
    generation = model.generation_config
    facts = generation_facts(
        folder / "tokenizer.json",
        model.config.vocab_size,
        model.config.max_target_positions,
        list(generation.suppress_tokens or []),
        list(generation.begin_suppress_tokens or []),
    )
    model.generation_config = facts.generation_config()
    return model.eval(), facts
