"""Bad BERT folders, label files and ONNX files: one clear line naming what is wrong, before any
work, and nothing written."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from helpers.bert_fixtures import (
    compose_team,
    save_hf_bert,
    save_joint_bert,
    write_network_pipelines,
)
from helpers.cli_runs import run_cli
from safetensors.torch import load_file, save_file
from test_bert_onnx_import import Logits, export_elsewhere

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve


@pytest.fixture(scope="module")
def team_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_network_pipelines(tmp_path_factory.mktemp("team") / "conf")


@pytest.fixture(scope="module")
def ner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ner")
    save_hf_bert(folder, "BertForTokenClassification", ["O", "B-PER", "I-PER", "B-LOC"])
    return folder


def _refused(team_conf: Path, head: str, *overrides: str) -> str:
    cfg = compose_team(team_conf, [f"pipeline=bert_{head}", *overrides])
    with pytest.raises(UserError) as caught:
        resolve(cfg)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def test_bad_folders(team_conf: Path, ner: Path, tmp_path: Path) -> None:
    head = "token_classification"
    missing = tmp_path / "nowhere"
    assert f"model.path: {missing} is not a folder" in _refused(
        team_conf, head, f"model.path={missing}"
    )
    no_config = _copy(ner, tmp_path / "no_config")
    (no_config / "config.json").unlink()
    assert "holds no config.json" in _refused(team_conf, head, f"model.path={no_config}")
    no_weights = _copy(ner, tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    assert "holds no weights (model.safetensors or pytorch_model.bin)" in _refused(
        team_conf, head, f"model.path={no_weights}"
    )
    truncated = _copy(ner, tmp_path / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "is not a readable weights file" in _refused(team_conf, head, f"model.path={truncated}")
    roberta = _copy(ner, tmp_path / "roberta")
    config = json.loads((roberta / "config.json").read_text()) | {"model_type": "roberta"}
    (roberta / "config.json").write_text(json.dumps(config))
    assert "model_type 'roberta' is not supported" in _refused(
        team_conf, head, f"model.path={roberta}"
    )
    no_tokenizer = _copy(ner, tmp_path / "no_tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    (no_tokenizer / "vocab.txt").unlink()
    assert "holds neither tokenizer.json nor vocab.txt" in _refused(
        team_conf, head, f"model.path={no_tokenizer}"
    )


class RunsCode:
    """Pickles as a call of os.system: unpickling it runs `command`."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_code_pickled_in_pytorch_model_bin_never_runs(
    team_conf: Path, ner: Path, tmp_path: Path
) -> None:
    folder = _copy(ner, tmp_path / "pickled_code")
    (folder / "model.safetensors").unlink()
    weights, marker = folder / "pytorch_model.bin", tmp_path / "code_ran"
    state = {"bert.pooler.dense.bias": RunsCode(f"touch {shlex.quote(str(marker))}")}
    torch.save(state, weights)
    message = _refused(team_conf, "token_classification", f"model.path={folder}")  # one line
    assert f"{weights} was not loaded: it holds pickled Python objects (posix.system)" in message
    assert "not plain tensors, and unpickling them could run code" in message
    assert "weights_only=False" not in message  # torch's advice: run the file's code
    assert not marker.exists()
    torch.load(weights, weights_only=False)  # as that advice would: the code does run
    assert marker.exists()


def test_weights_that_do_not_fit(team_conf: Path, ner: Path, tmp_path: Path) -> None:
    wider = _copy(ner, tmp_path / "wider")
    config = json.loads((wider / "config.json").read_text()) | {"intermediate_size": 80}
    (wider / "config.json").write_text(json.dumps(config))
    message = _refused(team_conf, "token_classification", f"model.path={wider}")
    assert "tensor bert.encoder.layer.0.intermediate.dense.bias has shape [64]" in message
    assert "config.json implies [80]" in message

    joint = tmp_path / "joint"
    save_joint_bert(joint, "intent_slot", {"intent": ["a", "b"], "slot": ["O", "B-x"]})
    tensors = load_file(str(joint / "model.safetensors"))
    del tensors["slot_classifier.bias"]
    save_file(tensors, str(joint / "model.safetensors"))
    assert "holds part of a intent_slot head but not slot_classifier.bias" in _refused(
        team_conf, "intent_slot", f"model.path={joint}"
    )


def test_bad_settings_and_label_files(team_conf: Path, ner: Path, tmp_path: Path) -> None:
    head = "token_classification"
    path = f"model.path={ner}"
    assert "model.head must be one of question_answering" in _refused(
        team_conf, head, path, "model.head=qa"
    )
    assert "model.max_seq_length must be >= 3 and <= 128" in _refused(
        team_conf, head, path, "model.max_seq_length=200"
    )
    labels = tmp_path / "labels.txt"
    assert f"model.labels: cannot read label file {labels}" in _refused(
        team_conf, head, path, f"model.labels={labels}"
    )
    labels.write_text("O\nB-PER\nO\n")
    assert "names 'O' more than once" in _refused(team_conf, head, path, f"model.labels={labels}")
    labels.write_text("O\n\nB-PER\n")
    assert "has an empty label at line 2" in _refused(
        team_conf, head, path, f"model.labels={labels}"
    )
    labels.write_text("O\nB-PER\nI-PER\n")
    message = _refused(team_conf, head, path, f"model.labels={labels}")
    assert "tensor classifier.weight has 4 classes but its label set has 3" in message
    assert "model.slot_labels is set, but the token_classification head has no such labels" in (
        _refused(team_conf, head, path, f"model.slot_labels={labels}")
    )
    encoder = tmp_path / "encoder"
    save_hf_bert(encoder)
    assert "seeded and TOKEN_LOGITS has no labels; pass a label file as model.labels=FILE" in (
        _refused(team_conf, head, f"model.path={encoder}", "model.seeded_labels=null")
    )
    assert "parity_shapes.0.tokens must be set: model 'network' takes token ids" in _refused(
        team_conf, head, path, "parity_shapes=[{batch:1,seconds:1},{batch:2,seconds:2}]"
    )


def test_bad_onnx_files(team_conf: Path, tmp_path: Path) -> None:
    head = "sequence_classification"
    folder = tmp_path / "sentiment"
    model = save_hf_bert(folder, "BertForSequenceClassification", ["neg", "neu", "pos"])
    path = f"model.path={folder}"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert f"model.onnx: {garbage} does not load in onnxruntime" in _refused(
        team_conf, head, path, f"model.onnx={garbage}"
    )
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    exported = export_elsewhere(Logits(model), tmp_path / "model.onnx", inputs)
    labels = tmp_path / "two.txt"
    labels.write_text("neg\npos\n")
    assert "output logits has 3 classes but its label set has 2" in _refused(
        team_conf, head, path, f"model.onnx={exported}", f"model.labels={labels}"
    )
    assert "has no output start_logits (or START_LOGITS) for the question_answering head" in (
        _refused(team_conf, head, path, f"model.onnx={exported}", "model.head=question_answering")
    )
    assert "served as it is: build it with backend=onnx precision=fp32" in _refused(
        team_conf, head, path, f"model.onnx={exported}", "backend=torchscript"
    )
    renamed = tmp_path / "renamed.onnx"
    export_elsewhere(Logits(model), renamed, ["ids", "attention_mask", "token_type_ids"])
    assert "has no input input_ids (or INPUT_IDS); its inputs: ids, " in _refused(
        team_conf, head, path, f"model.onnx={renamed}"
    )


def test_cli_says_one_line_and_writes_nothing(team_conf: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    repo = tmp_path / "repo"
    result = run_cli(
        "--config-dir",
        str(team_conf),
        "pipeline=bert_sequence_classification",
        f"model.onnx={garbage}",
        f"output_dir={repo}",
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "model.onnx:" in result.stderr and "does not load in onnxruntime" in result.stderr
    assert not repo.exists()


def test_parity_tokens_beyond_the_window_are_refused(team_conf: Path, ner: Path, tmp_path):
    cfg = compose_team(
        team_conf,
        [
            "pipeline=bert_token_classification",
            f"model.path={ner}",
            "model.max_seq_length=16",
            "parity_shapes=[{batch:1,tokens:9},{batch:2,tokens:31}]",
        ],
    )
    with pytest.raises(UserError, match=r"tokens must be between 3 and max_seq_length \(16\)"):
        build_repository(cfg, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
