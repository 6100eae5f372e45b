"""Tiny Hugging Face BERT folders made on the fly, as transformers' save_pretrained writes them.

Each folder holds config.json, model.safetensors and a small WordPiece vocabulary (vocab.txt,
tokenizer_config.json and, unless asked otherwise, tokenizer.json), so it loads offline like a
real checkpoint in a fraction of a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from tokenizers.implementations import BertWordPieceTokenizer

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a is was in of to and what where who when how why did does city river paris france "
    "london berlin music play book weather rain sun today tomorrow john mary company bank "
    "river ##s ##ed ##ing . , ? !"
).split()
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
VOCAB = list(dict.fromkeys(SPECIAL + WORDS + LETTERS + [f"##{c}" for c in LETTERS]))


def tiny_config(**extra) -> transformers.BertConfig:
    return transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        **extra,
    )


def write_vocabulary(folder: Path, tokenizer_json: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    if tokenizer_json:
        tokenizer = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True)
        tokenizer.save(str(folder / "tokenizer.json"))


def save_hf_bert(
    folder: Path, architecture: str = "BertModel", labels: list[str] | None = None, seed: int = 0
) -> torch.nn.Module:
    """A transformers model of class `architecture` (BertModel, BertForQuestionAnswering, ...)
    with random weights, saved with save_pretrained; returns it (eval mode)."""
    extra = {}
    if labels:
        extra = {
            "id2label": dict(enumerate(labels)),
            "label2id": {n: i for i, n in enumerate(labels)},
        }
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(tiny_config(**extra)).eval()
    model.save_pretrained(str(folder))
    write_vocabulary(folder)
    return model


def save_joint_bert(
    folder: Path, head: str, label_sets: dict[str, list[str]], seed: int = 0
) -> dict[str, torch.Tensor]:
    """A folder in the documented layout of the joint heads: a BertModel's tensors under
    `bert.` plus the head's named Linear layers, and config.json <field>_id2label per label set
    (`label_sets`: {"intent": [...], "slot": [...]} or {"punct": [...], "capit": [...]})."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    config = tiny_config()
    encoder = transformers.BertModel(config, add_pooling_layer=False)
    tensors = {f"bert.{k}": v for k, v in encoder.state_dict().items()}
    for prefix, names in label_sets.items():
        tensors[f"{prefix}_classifier.weight"] = torch.randn(len(names), config.hidden_size)
        tensors[f"{prefix}_classifier.bias"] = torch.randn(len(names))
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    document = config.to_dict() | {"architectures": [f"BertFor{head.title().replace('_', '')}"]}
    for prefix, names in label_sets.items():
        document[f"{prefix}_id2label"] = {str(i): n for i, n in enumerate(names)}
    (folder / "config.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    write_vocabulary(folder)
    return tensors
