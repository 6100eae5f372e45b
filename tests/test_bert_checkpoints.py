"""Hugging Face folders load as they are: transformers' BertFor* task folders and the
documented joint layouts give, exported, the logits transformers (or the layout's own
arithmetic) gives on real text; labels come from the checkpoint, a label file, or the
project's defaults for a seeded head, in that order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from helpers.bert_fixtures import (
    compose_team,
    save_hf_bert,
    save_joint_bert,
    write_network_pipelines,
    write_vocabulary,
)
from tokenizers import Tokenizer

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.components.bert_source import BertSourceSettings, label_names, tokenizer_json
from modelrepo_gen.exporters import EXPORTERS

SENTENCES = ["John was in Paris today.", "What is the weather in London tomorrow?"]
HF_FOLDERS = {  # head -> (transformers class, its id2label)
    "question_answering": ("BertForQuestionAnswering", None),
    "token_classification": ("BertForTokenClassification", ["O", "B-PER", "I-PER", "B-LOC"]),
    "sequence_classification": ("BertForSequenceClassification", ["neg", "neu", "pos"]),
}


@pytest.fixture(scope="module")
def team_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_network_pipelines(tmp_path_factory.mktemp("team") / "conf")


def _tokenized(folder: Path) -> list[np.ndarray]:
    tokenizer = Tokenizer.from_file(str(tokenizer_json(BertSourceSettings(path=str(folder)))))
    tokenizer.enable_padding(pad_id=0)
    encodings = tokenizer.encode_batch(SENTENCES)
    assert all("[UNK]" not in e.tokens for e in encodings)  # the folder's vocabulary, lower-cased
    return [
        np.array([getattr(e, field) for e in encodings], dtype=np.int64)
        for field in ("ids", "attention_mask", "type_ids")
    ]


def _served_outputs(team_conf: Path, head: str, folder: Path, tmp_path: Path) -> tuple:
    cfg = compose_team(team_conf, [f"pipeline=bert_{head}", f"model.path={folder}"])
    report = build_repository(cfg, tmp_path / "repo")
    (unit,) = report.plan.units
    run = EXPORTERS.get("onnx").load(
        tmp_path / "repo" / unit.name / "1" / "model.onnx", unit.export.inputs
    )
    arrays = _tokenized(folder)
    return report, arrays, run(arrays)


@pytest.mark.parametrize("head", sorted(HF_FOLDERS))
def test_transformers_task_folder_serves_its_own_logits(
    head: str, team_conf: Path, tmp_path: Path
) -> None:
    architecture, labels = HF_FOLDERS[head]
    folder = tmp_path / "checkpoint"
    model = save_hf_bert(folder, architecture, labels, seed=5)
    report, (ids, mask, types), outputs = _served_outputs(team_conf, head, folder, tmp_path)
    assert report.plan.notes == []  # a trained head: nothing seeded
    with torch.no_grad():
        expected = model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types),
        )
    if head == "question_answering":
        pairs = [(outputs[0], expected.start_logits), (outputs[1], expected.end_logits)]
        assert label_names(BertSourceSettings(path=str(folder), head=head)) == {}
    else:
        pairs = [(outputs[0], expected.logits)]
        (names,) = label_names(BertSourceSettings(path=str(folder), head=head)).values()
        assert names == labels
    valid = mask.astype(bool)
    for served, reference in pairs:
        reference = reference.numpy()
        if reference.ndim > 1 and head != "sequence_classification":
            served, reference = served[valid], reference[valid]  # padded tokens aside
        assert np.abs(served - reference).max() < 1e-4


@pytest.mark.parametrize(
    ("head", "label_sets"),
    [
        ("intent_slot", {"intent": ["greet", "book"], "slot": ["O", "B-city", "I-city"]}),
        ("punctuation", {"punct": ["O", ",", ".", "?"], "capit": ["O", "U"]}),
    ],
)
def test_joint_head_layout_loads(head: str, label_sets: dict, team_conf: Path, tmp_path: Path):
    folder = tmp_path / "checkpoint"
    tensors = save_joint_bert(folder, head, label_sets, seed=7)
    report, (ids, mask, types), outputs = _served_outputs(team_conf, head, folder, tmp_path)
    assert report.plan.notes == []
    settings = BertSourceSettings(path=str(folder), head=head)
    assert list(label_names(settings).values()) == list(label_sets.values())
    encoder = transformers.BertModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = encoder(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types),
        ).last_hidden_state
    for (prefix, _), served in zip(label_sets.items(), outputs, strict=True):
        layer = f"{prefix}_classifier"
        reads = hidden[:, 0] if prefix == "intent" else hidden  # intent: the [CLS] state
        expected = torch.nn.functional.linear(
            reads, tensors[f"{layer}.weight"], tensors[f"{layer}.bias"]
        ).numpy()
        if served.ndim == 3:
            served, expected = served[mask.astype(bool)], expected[mask.astype(bool)]
        assert np.abs(served - expected).max() < 1e-4


def test_label_file_wins_then_checkpoint_then_seeded_default(tmp_path: Path) -> None:
    folder = tmp_path / "ner"
    save_hf_bert(folder, "BertForTokenClassification", ["O", "B-X", "I-X"])
    own = BertSourceSettings(path=str(folder), head="token_classification")
    assert label_names(own) == {"TOKEN_LOGITS": ["O", "B-X", "I-X"]}
    replaced = tmp_path / "labels.txt"
    replaced.write_text("O\nB-Y\nI-Y\n\n")
    own.labels = str(replaced)
    assert label_names(own) == {"TOKEN_LOGITS": ["O", "B-Y", "I-Y"]}

    encoder = tmp_path / "encoder"
    save_hf_bert(encoder)  # a bare BertModel: every head is seeded
    seeded = BertSourceSettings(path=str(encoder), head="punctuation")
    seeded.seeded_labels, seeded.seeded_capit_labels = str(replaced), str(replaced)
    seeded.capit_labels = str(tmp_path / "capit.txt")
    (tmp_path / "capit.txt").write_text("lower\nUpper\nALL\n")
    assert label_names(seeded) == {
        "PUNCT_LOGITS": ["O", "B-Y", "I-Y"],
        "CAPIT_LOGITS": ["lower", "Upper", "ALL"],
    }


def test_vocab_only_folder_gets_a_built_tokenizer(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MODELREPO_GEN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "vocab_only"
    write_vocabulary(folder, tokenizer_json=False)
    settings = BertSourceSettings(path=str(folder))
    built = tokenizer_json(settings)
    assert built.is_relative_to(tmp_path / "cache") and built.name == "tokenizer.json"
    first = built.read_bytes()
    built.unlink()
    assert tokenizer_json(settings) == built and built.read_bytes() == first  # deterministic
    reference = transformers.BertTokenizer.from_pretrained(str(folder))
    for sentence in SENTENCES:
        ours = Tokenizer.from_file(str(built)).encode(sentence).ids
        assert ours == reference(sentence)["input_ids"]


def test_pytorch_model_bin_folder_loads(tmp_path: Path) -> None:
    """A folder saved without safetensors (pytorch_model.bin) gives transformers' own logits."""
    from helpers.bert_fixtures import tiny_config

    folder = tmp_path / "bin"
    torch.manual_seed(3)
    config = tiny_config(id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(str(folder))
    (folder / "model.safetensors").unlink()  # as older transformers versions saved it
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    write_vocabulary(folder)
    from modelrepo_gen.components.bert import Bert

    settings = BertSourceSettings(path=str(folder), head="sequence_classification")
    Bert().check(settings, "model")
    module = Bert().make_module(settings, seed=0)
    ids, mask, types = (torch.from_numpy(a) for a in _tokenized(folder))
    with torch.no_grad():
        (ours,) = module(ids, mask, types)
        theirs = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
