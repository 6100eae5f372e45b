"""Float audio -> a 16-bit PCM mono WAV file, written whole or not at all."""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np

from modelrepo_gen.core.errors import UserError


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (beyond: clipped) as little-endian 16-bit integers."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return np.round(clipped * 32767).astype("<i2")


def check_writable(path: Path) -> None:
    """UserError unless a file can be written at `path` (checked before any work)."""
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: folder {folder} is not writable")


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write beside `path` first, then rename over it, so a failure leaves no partial file."""
    check_writable(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        with wave.open(temporary, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(pcm16(audio).tobytes())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
