"""A Hugging Face Whisper folder converted to CTranslate2, for the CTranslate2 runtime.

CTranslate2's own converter (the one behind ct2-transformers-converter) writes model.bin,
config.json and the vocabulary, weights kept as they are (a compute type is chosen when the
model is loaded). The result is cached under the temporary folder, keyed by the source folder,
its files' sizes and times and the converter's version, so a rebuild converts nothing; a
conversion is written beside its place and renamed into it, so none is ever half there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from modelrepo_gen.core.errors import UserError, first_line

CACHE = "modelrepo_gen_ctranslate2"
COPIED = ["tokenizer.json"]


def _key(folder: Path, version: str) -> str:
    digest = hashlib.sha256(f"{folder.resolve()}\0{version}".encode())
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def converted_folder(folder: Path) -> Path:
    """The CTranslate2 folder of the Hugging Face Whisper folder `folder` (converted once)."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    target = Path(tempfile.gettempdir()) / CACHE / _key(folder, ctranslate2.__version__)
    if (target / "model.bin").is_file():
        return target
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        TransformersConverter(str(folder), copy_files=COPIED).convert(str(partial), force=True)
        os.replace(partial, target)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        first = first_line(error)
        raise UserError(f"CTranslate2 could not convert {folder}: {first}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
