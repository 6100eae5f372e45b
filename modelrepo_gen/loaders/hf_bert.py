"""Reads a Hugging Face BERT folder offline: config.json and the weights (safetensors or bin).

Tensor names are normalised to the `bert.`-prefixed layout of transformers' BertFor* classes, so
a bare BertModel folder (unprefixed names) and a task folder read the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.checkpoint_file import SAVE_WEIGHTS, refused_pickle

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ENCODER_PREFIX = "bert."
# Encoder parts that are not weights (recomputed by the module) or that a head never reads.
IGNORED = ("bert.embeddings.position_ids",)


@dataclass(frozen=True)
class BertFolder:
    path: Path
    config: dict  # config.json as written
    weights: Path
    tensors: dict[str, torch.Tensor]  # `bert.`-prefixed encoder tensors plus head tensors

    @property
    def architecture(self) -> str:
        names = self.config.get("architectures") or [""]
        return str(names[0])


def read_config(folder: Path) -> dict:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder} holds no config.json (a Hugging Face BERT folder is needed)")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{config_file} is not readable JSON ({error})") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_file} must hold a JSON object")
    return config


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder} holds no weights ({' or '.join(WEIGHT_FILES)})")


def _read_tensors(weights: Path) -> dict[str, torch.Tensor]:
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights))
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: name it, no traceback
        if refused := refused_pickle(error):
            raise UserError(
                f"{weights} was not loaded: {refused}; save the model with save_pretrained "
                f"(model.safetensors), or {SAVE_WEIGHTS}"
            ) from None
        raise UserError(f"{weights} is not a readable weights file ({error})") from None
    if not isinstance(state, dict):
        raise UserError(f"{weights} holds no state dict")
    return state


def read_bert_folder(folder: Path) -> BertFolder:
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    config = read_config(folder)
    if config.get("model_type", "bert") != "bert":
        raise UserError(
            f"{folder}: model_type {config.get('model_type')!r} is not supported; "
            "a BERT-family folder with model_type 'bert' is needed"
        )
    weights = weights_file(folder)
    tensors = {}
    for name, tensor in _read_tensors(weights).items():
        if name.startswith(("embeddings.", "encoder.", "pooler.")):
            name = ENCODER_PREFIX + name  # a bare BertModel's names
        if name not in IGNORED:
            tensors[name] = tensor
    if not any(name.startswith(ENCODER_PREFIX) for name in tensors):
        raise UserError(f"{weights} holds no BERT encoder tensors (bert.embeddings..., ...)")
    return BertFolder(folder, config, weights, tensors)
