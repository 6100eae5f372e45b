"""Read audio files as the float32 mono signal an ASR ensemble expects."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from modelrepo_gen.core.errors import UserError


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path`` (wav, flac, ogg, ... anything libsndfile reads) to float32 mono.

    Channels are averaged and the signal is resampled to ``sample_rate`` with a polyphase
    filter; the result is clipped to [-1, 1] because the filter can overshoot a little.
    """
    if sample_rate <= 0:
        raise UserError(f"sample rate must be positive, got {sample_rate}")
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"audio file '{path}' {problem}")
    try:
        data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise UserError(f"cannot read audio file '{path}': {error}") from None
    signal = data.mean(axis=1, dtype=np.float32)
    if file_rate != sample_rate and signal.size:
        divisor = math.gcd(int(file_rate), int(sample_rate))
        signal = resample_poly(signal, sample_rate // divisor, file_rate // divisor)
    return np.clip(signal, -1.0, 1.0).astype(np.float32, copy=False)
