"""A model.onnx exported elsewhere (here: transformers + torch.onnx in the test) is served as it
is: no PyTorch module is made; its tensors are fitted to the head's by name, and it is checked
for finite, batch-invariant outputs at the parity shapes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers.bert_fixtures import compose_team, save_hf_bert, write_network_pipelines
from test_bert_checkpoints import _tokenized

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters import EXPORTERS

LABELS = ["neg", "neu", "pos"]


class WithoutTokenTypes(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class IgnoresMask(torch.nn.Module):
    """Attends to padding: a row's logits change with how far it is padded (scaled up, as a
    trained head's are, beyond the tiny random model's 1e-2)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        everywhere = torch.ones_like(attention_mask)
        logits = self.model(
            input_ids=input_ids, attention_mask=everywhere, token_type_ids=token_type_ids
        ).logits
        return 1000 * logits


class Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits


def export_elsewhere(module: torch.nn.Module, path: Path, inputs: list[str]) -> Path:
    """What a user's own export script does: Hugging Face names, dynamic batch and length."""
    example = tuple(torch.ones(2, 5, dtype=torch.long) for _ in inputs)
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs} | {"logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            input_names=inputs,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def team_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_network_pipelines(tmp_path_factory.mktemp("team") / "conf")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    folder = tmp_path_factory.mktemp("sentiment")
    return folder, save_hf_bert(folder, "BertForSequenceClassification", LABELS, seed=11)


def _build(team_conf: Path, folder: Path, onnx_path: Path, repo: Path, *extra: str):
    cfg = compose_team(
        team_conf,
        [
            "pipeline=bert_sequence_classification",
            f"model.path={folder}",
            f"model.onnx={onnx_path}",
            *extra,
        ],
    )
    return build_repository(cfg, repo)


def test_imported_onnx_is_checked_and_served_as_it_is(team_conf, classifier, tmp_path) -> None:
    folder, model = classifier
    path = export_elsewhere(
        Logits(model), tmp_path / "model.onnx", ["input_ids", "attention_mask", "token_type_ids"]
    )
    report = _build(team_conf, folder, path, tmp_path / "repo")
    (unit,) = report.plan.units
    assert report.plan.notes == []
    assert [(s.name, s.dims) for s in unit.outputs] == [("LOGITS", (3,))]
    manifest = json.loads((tmp_path / "repo" / "manifest.json").read_text())
    entry = manifest["models"][unit.name]
    assert entry["imported"] is True and "parity" not in entry
    assert {(c["batch"], c["tokens"]) for c in entry["batch_invariance"]} == {(1, 9), (3, 31)}
    assert manifest["weights"][unit.name]["source"] == "onnx"

    served = tmp_path / "repo" / unit.name / "1" / "model.onnx"
    graph = onnx.load(str(served)).graph
    assert [i.name for i in graph.input] == ["INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS"]
    assert [o.name for o in graph.output] == ["LOGITS"]
    ids, mask, types = _tokenized(folder)
    (logits,) = EXPORTERS.get("onnx").load(served, unit.export.inputs)([ids, mask, types])
    with torch.no_grad():
        expected = Logits(model)(*(torch.from_numpy(a) for a in (ids, mask, types))).numpy()
    assert np.abs(logits - expected).max() < 1e-5


def test_model_without_token_types_keeps_the_wiring(team_conf, classifier, tmp_path) -> None:
    folder, model = classifier
    path = export_elsewhere(
        WithoutTokenTypes(model), tmp_path / "model.onnx", ["input_ids", "attention_mask"]
    )
    report = _build(team_conf, folder, path, tmp_path / "repo")
    (unit,) = report.plan.units
    served = tmp_path / "repo" / unit.name / "1" / "model.onnx"
    assert [i.name for i in onnx.load(str(served)).graph.input][-1] == "TOKEN_TYPE_IDS"
    ids, mask, types = _tokenized(folder)
    run = EXPORTERS.get("onnx").load(served, unit.export.inputs)
    (logits,) = run([ids, mask, 0 * types])
    (with_segments,) = run([ids, mask, mask])  # the unused input changes nothing
    with torch.no_grad():
        expected = WithoutTokenTypes(model)(torch.from_numpy(ids), torch.from_numpy(mask))
    assert np.abs(logits - expected.numpy()).max() < 1e-5
    assert np.array_equal(logits, with_segments)


def test_model_that_attends_to_padding_is_refused(team_conf, classifier, tmp_path) -> None:
    folder, model = classifier
    path = export_elsewhere(
        IgnoresMask(model),
        tmp_path / "model.onnx",
        ["input_ids", "attention_mask", "token_type_ids"],
    )
    with pytest.raises(UserError, match="is not batch-invariant: output LOGITS of row 1"):
        _build(team_conf, folder, path, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
