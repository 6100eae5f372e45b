"""What a request's audio may hold, for every model that takes AUDIO_SIGNAL + NUM_SAMPLES.

Samples are float PCM: finite and at most MAX_AMPLITUDE in size (1.0 is full scale; 1e6
leaves room for any integer PCM sent unscaled, and keeps a window's power far from float32's
overflow, which turned 1e30 samples into NaN features). Each row holds at most `max_samples`
samples and its NUM_SAMPLES lies between `min_samples` (what makes one feature frame) and the
row's length.
"""

from __future__ import annotations

MAX_AMPLITUDE = 1e6


def audio_checks(max_samples: int, min_samples: int = 1) -> dict:
    """The request checks of the CPU runner (see triton_python/exported_model_runner.py)."""
    checks: dict = {
        "finite": ["AUDIO_SIGNAL"],
        "max_length": {"AUDIO_SIGNAL": [max_samples, 1]},
        "value_range": {"AUDIO_SIGNAL": [-MAX_AMPLITUDE, MAX_AMPLITUDE]},
        "lengths": {"NUM_SAMPLES": ["AUDIO_SIGNAL", 1]},
    }
    if min_samples > 1:
        checks["value_range"]["NUM_SAMPLES"] = [min_samples, max_samples]
    return checks
