"""Sequence classification: logits -> the best label, its probability and every probability.

Copied beside the python-backend models that use it; numpy only.
"""

from __future__ import annotations

import numpy as np


def classify(logits: np.ndarray, labels: list[str]) -> tuple[str, float, np.ndarray]:
    shifted = logits.astype(np.float64) - logits.max()
    probabilities = np.exp(shifted) / np.exp(shifted).sum()
    best = int(np.argmax(probabilities))
    return labels[best], float(probabilities[best]), probabilities.astype(np.float32)
