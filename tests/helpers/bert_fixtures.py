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
        max_position_embeddings=128,
        initializer_range=0.2,  # outputs of order 1, so tolerances mean something
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


# The outputs of each head, as the `bert` component names them.
HEAD_OUTPUTS = {
    "question_answering": ["START_LOGITS", "END_LOGITS"],
    "token_classification": ["TOKEN_LOGITS"],
    "sequence_classification": ["LOGITS"],
    "intent_slot": ["INTENT_LOGITS", "SLOT_LOGITS"],
    "punctuation": ["PUNCT_LOGITS", "CAPIT_LOGITS"],
    "feature_extraction": ["HIDDEN_STATES"],
}
# The project's label files for seeded heads.
SEEDED_LABELS = {
    "token_classification": {"seeded_labels": "conll2003_ner.txt"},
    "sequence_classification": {"seeded_labels": "sentiment.txt"},
    "intent_slot": {"seeded_labels": "snips_intents.txt", "seeded_slot_labels": "snips_slots.txt"},
    "punctuation": {
        "seeded_labels": "punctuation.txt",
        "seeded_capit_labels": "capitalization.txt",
    },
}
INPUTS = ["INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS"]


def network_pipeline(head: str) -> str:
    """A pipeline whose ensemble is the `bert` network alone: token ids in, the head's out."""
    seeded = "".join(
        f"  {key}: ${{label_file:{name}}}\n" for key, name in SEEDED_LABELS.get(head, {}).items()
    )
    return (
        "# @package _global_\n"
        "defaults:\n  - /model: minilm_l6_v2\n  - _self_\n"
        f"model:\n  component: bert\n  head: {head}\n{seeded}"
        "  labels: null\n  slot_labels: null\n  capit_labels: null\n"
        f"pipeline:\n  name: bert_{head}\n  models:\n    network: ${{model}}\n"
        f"  ensemble:\n    inputs: {json.dumps(INPUTS)}\n"
        f"    outputs: {json.dumps(HEAD_OUTPUTS[head])}\n"
        f"    steps:\n      - model: network\n        inputs: {json.dumps(INPUTS)}\n"
        f"        outputs: {json.dumps(HEAD_OUTPUTS[head])}\n"
    )


def write_network_pipelines(conf: Path) -> Path:
    """A team config folder (for --config-dir / hydra.searchpath) with pipeline bert_<head>."""
    (conf / "pipeline").mkdir(parents=True, exist_ok=True)
    for head in HEAD_OUTPUTS:
        (conf / "pipeline" / f"bert_{head}.yaml").write_text(network_pipeline(head))
    return conf


def compose_team(conf: Path, overrides: list[str]):
    """The config the CLI composes with --config-dir conf and these overrides."""
    from helpers.project import compose_config

    return compose_config(overrides, team_conf=conf)


def mixed_rows(lengths: list[int], vocabulary: int, seed: int = 0) -> list:
    """INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS for rows of these lengths, zero-padded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width = max(lengths)
    ids = rng.integers(1, vocabulary, (len(lengths), width))
    mask = (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    types = (np.arange(width)[None, :] >= np.array(lengths)[:, None] // 2) & (mask == 1)
    return [ids * mask, mask, types.astype(np.int64)]
